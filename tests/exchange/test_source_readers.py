"""Local sources count their readers: decode ahead alone, inline when many read at once."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import exchange_store.exchange.source as source_module
from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.manager import ExchangeManager


def _handles(tmp_path: Path) -> tuple[ExchangeManager, list]:  # type: ignore[type-arg]
    manager = ExchangeManager.from_properties(
        {
            "exchange.base-directories": str(tmp_path),
            "exchange.compression-codec": "LZ4",
            "exchange.encryption-key-file": "",
            "exchange.block-size": "4kB",
        }
    )
    exchange = manager.create_exchange(ExchangeContext("q", "e"), 2)
    sinks = [exchange.add_sink(t) for t in range(3)]
    exchange.no_more_sinks()
    for t, handle in enumerate(sinks):
        with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
            for i in range(200):
                sink.add(i % 2, b"x%d-%d " % (t, i) * 40)
        exchange.sink_finished(handle, 0, sink.finish())
    exchange.all_required_sinks_finished()
    return manager, exchange.get_source_handles()


def test_reader_count_follows_reads_closes_and_dropped_sources(tmp_path: Path) -> None:
    manager, handles = _handles(tmp_path)
    base = source_module._count_reader(0)

    drained = manager.create_source(handles)
    drained.no_more_source_handles()
    assert len(list(drained)) == 600
    assert source_module._count_reader(0) == base  # counted while reading, not after

    closed = manager.create_source(handles)
    closed.no_more_source_handles()
    next(iter(closed))
    assert source_module._count_reader(0) == base + 1
    closed.close()
    assert source_module._count_reader(0) == base

    dropped = manager.create_source(handles)
    dropped.no_more_source_handles()
    next(iter(dropped))
    assert source_module._count_reader(0) == base + 1
    del dropped
    # Units it lined up may still be decoding on the shared pool (which holds the source
    # until they finish): collect until the pool let go of it.
    deadline = time.monotonic() + 30
    while source_module._count_reader(0) != base and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert source_module._count_reader(0) == base


def test_one_reader_decodes_ahead_and_many_decode_inline(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    manager, handles = _handles(tmp_path)
    submitted: list[int] = []
    real = source_module._decoders

    def counting():  # type: ignore[no-untyped-def]
        submitted.append(1)
        return real()

    monkeypatch.setattr(source_module, "_decoders", counting)
    alone = manager.create_source(handles)
    alone.no_more_source_handles()
    assert len(list(alone)) == 600
    assert submitted  # the only reader: its units were decoded ahead on the pool

    submitted.clear()
    others = []
    for _ in range(source_module._DECODERS):  # as many readers as cores, each mid-read
        s = manager.create_source(handles)
        s.no_more_source_handles()
        next(iter(s))
        others.append(s)
    submitted.clear()
    crowded = manager.create_source(handles)
    crowded.no_more_source_handles()
    assert len(list(crowded)) == 600
    assert not submitted  # every core has a reader: decoded inline
    for s in others:
        s.close()
