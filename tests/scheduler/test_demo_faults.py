"""The demo's storage faults: real 503/500 replies under the exchange, absorbed by retries."""

from __future__ import annotations

from pathlib import Path

import exchange_store as xs
from exchange_store.demo.faults import count_injected, with_storage_faults
from exchange_store.scheduler.worker import open_exchange_manager
from exchange_store.testing.faults import FaultyFileSystemClient


def test_exchange_client_is_wrapped_and_faults_are_absorbed(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "filesystem").mkdir(parents=True)
    (etc / "exchange-manager.properties").write_text(
        f"exchange.base-directories={tmp_path / 'spool'}\n"
    )
    (etc / "filesystem" / "exchange.properties").write_text("fs.client.type=local\n")
    log = str(tmp_path / "ops.log")
    manager = open_exchange_manager(with_storage_faults(str(etc), log))
    assert manager is not None
    assert isinstance(manager.client, FaultyFileSystemClient)

    exchange = manager.create_exchange(xs.ExchangeContext("q1", "e"), 1)
    handle = exchange.add_sink(0)
    exchange.no_more_sinks()
    with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
        sink.add(0, b"row")  # its manifest publish meets two 503 SlowDown replies
    exchange.sink_finished(handle, 0)
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    assert list(source) == [b"row"]  # its first ranged read meets a 500
    source.close()
    exchange.close()
    assert count_injected(log) == {"throttle": 2, "server-error": 1}


def test_no_log_means_nothing_injected(tmp_path: Path) -> None:
    assert count_injected(str(tmp_path / "missing.log")) == {}
