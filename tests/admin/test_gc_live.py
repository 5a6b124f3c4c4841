"""Adversarial findings: gc beside live queries, closed exchanges under readers, small inputs."""

from __future__ import annotations

import contextlib
import io
import pathlib
import threading
import traceback

import pytest

import exchange_store as xs
from exchange_store.cli.main import main

from .conftest import write_etc


def _storage(request: pytest.FixtureRequest, tmp_path: pathlib.Path, kind: str):
    if kind == "local":
        base = tmp_path / "exchange"
        base.mkdir()
        return str(base), {"fs.client.type": "local"}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/ex", dict(request.getfixturevalue("s3_properties"))


def _workflow(manager: xs.ExchangeManager, query: str, exchange_id: str) -> None:
    """Create, write two sinks, read every partition back, close."""
    exchange = manager.create_exchange(xs.ExchangeContext(query, exchange_id), 3)
    try:
        sinks = [exchange.add_sink(t) for t in range(2)]
        exchange.no_more_sinks()
        for t, handle in enumerate(sinks):
            sink = manager.create_sink(exchange.instantiate_sink(handle, 0))
            for i in range(30):
                sink.add(i % 3, b"%d-%d|" % (t, i) * 40)
            exchange.sink_finished(handle, 0, sink.finish())
        exchange.all_required_sinks_finished()
        source = manager.create_source(exchange.get_source_handles())
        source.no_more_source_handles()
        got = sum(1 for _ in source)
        source.close()
        assert got == 60, got
    finally:
        exchange.close()


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_gc_at_zero_threshold_in_a_loop_beside_live_exchanges(request, tmp_path, kind) -> None:
    base, fs = _storage(request, tmp_path, kind)
    props = {
        "exchange.base-directories": base,
        "exchange-filesystem-type": "exchange",
        "exchange.lease-ttl": "5s",
        "exchange.sink-max-buffer-size": "1MB",
    }
    etc = write_etc(tmp_path, props, fs)
    rounds = 40 if kind == "local" else 8
    failures: list[str] = []
    done = threading.Event()

    def worker(w: int) -> None:
        manager = xs.ExchangeManager.from_etc(etc)
        try:
            for r in range(rounds):
                # Fresh queries, and several exchanges of one query at once across workers.
                query = f"q{r}" if r % 2 else f"w{w}r{r}"
                _workflow(manager, query, f"e{w}")
        except BaseException:
            failures.append(traceback.format_exc())
        finally:
            manager.close()

    codes: list[int] = []

    def collector() -> None:
        while not done.is_set():
            with contextlib.redirect_stdout(io.StringIO()):
                codes.append(main(["gc", "--etc", str(etc), "--older-than", "0s", "--json"]))

    workers = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    gc = threading.Thread(target=collector)
    gc.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    gc.join()
    assert failures == [], failures[0]
    assert len(codes) >= 3 and set(codes) == {0}, codes
    # Once everything closed, gc leaves nothing behind and nothing was left to collect.
    assert main(["gc", "--etc", str(etc), "--older-than", "0s"]) == 0


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_close_under_a_reader_raises_exchange_closed(request, tmp_path, kind) -> None:
    base, fs = _storage(request, tmp_path, kind)
    manager = xs.ExchangeManager.from_properties(
        {
            "exchange.base-directories": base,
            "exchange-filesystem-type": "x",
            "exchange.block-size": "4kB",
            "exchange.source-concurrent-readers": "1",
        },
        filesystems={"x": fs},
    )
    exchange = manager.create_exchange(xs.ExchangeContext("closing", "e"), 1)
    handle = exchange.add_sink(0)
    sink = manager.create_sink(exchange.instantiate_sink(handle, 0))
    for i in range(2000):
        sink.add(0, b"%06d" % i * 100)
    exchange.sink_finished(handle, 0, sink.finish())
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    exchange.close()  # before the source reads a byte
    source = manager.create_source(handles)
    source.no_more_source_handles()
    with pytest.raises(xs.ExchangeClosedError, match="closing/e was closed"):
        list(source)
    source.close()
    manager.close()


def test_small_inputs_get_clear_errors(tmp_path, s3_properties) -> None:
    props = dict(s3_properties)
    del props["s3.aws-access-key"]
    with pytest.raises(
        xs.ConfigurationError, match=r"s3\.aws-secret-key is set but s3\.aws-access"
    ):
        xs.ExchangeManager.from_properties(
            {"exchange.base-directories": "s3://b/x", "exchange-filesystem-type": "s3"},
            filesystems={"s3": props},
        )
    manager = xs.ExchangeManager.from_properties({"exchange.base-directories": str(tmp_path)})
    exchange = manager.create_exchange(xs.ExchangeContext("small", "e"), 2)
    with pytest.raises(xs.InvalidArgumentError, match=r"task_partition_id 1099511627776"):
        exchange.add_sink(2**40)
    handle = exchange.add_sink(2**31 - 1)
    with pytest.raises(xs.InvalidArgumentError, match="attempt_id"):
        exchange.instantiate_sink(handle, 2**31)
    exchange.close()
    manager.close()
    with pytest.raises(xs.InvalidArgumentError, match="closed ExchangeManager"):
        manager.create_exchange(xs.ExchangeContext("small", "e2"), 2)
