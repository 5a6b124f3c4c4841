"""Bounded memory and one file per attempt whatever the partition count; back-pressure."""

from __future__ import annotations

import collections
import threading

from exchange_store.exchange.handles import ExchangeContext

from ._helpers import read_all


def test_ten_thousand_partitions_bounded_buffers_one_file(backend):
    limit = 1 << 20
    manager = backend.manager(
        {"exchange.sink-max-buffer-size": "1MB", "exchange.compression-codec": "NONE"}
    )
    exchange = manager.create_exchange(ExchangeContext("q20", "wide"), 10_000)
    sink_handle = exchange.add_sink(0)
    sink = manager.create_sink(exchange.instantiate_sink(sink_handle, 0))
    peak = 0
    expected: collections.Counter[bytes] = collections.Counter()
    rounds = 3 if backend.name == "local" else 1
    for r in range(rounds):
        for p in range(10_000):
            record = b"%d/%d/" % (r, p) + b"x" * 90
            sink.add(p, record)
            expected[record] += 1
            if p % 500 == 0:
                peak = max(peak, sink.memory_usage)
    sink.finish()
    # buffers + blocks in flight stay under the budget (plus the format's pending blocks,
    # bounded by max_pending_blocks small blocks)
    assert 0 < peak <= limit + (256 << 10)
    manifest = sink.manifest
    assert manifest is not None and len(manifest.files) == 1
    assert len(backend.files(manager)) == 1 + 1 + 1 + len(
        manager.base_directories
    )  # data, manifest, the exchange's record, leases
    exchange.sink_finished(sink_handle, 0)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert len({h.partition_id for h in handles}) == 10_000
    if backend.name == "local":
        assert collections.Counter(read_all(manager, handles)) == expected
    else:  # a sample of partitions is enough over HTTP
        sample = [h for h in handles if h.partition_id % 997 == 0]
        got = collections.Counter(read_all(manager, sample))
        assert got == collections.Counter(
            {k: v for k, v in expected.items() if int(k.split(b"/")[1]) % 997 == 0}
        )
    exchange.close()


def test_add_blocks_when_the_writer_is_slow(local_backend, monkeypatch):
    """Back-pressure: with storage stalled, add() waits instead of buffering without bound."""
    manager = local_backend.manager(
        {"exchange.sink-max-buffer-size": "64kB", "exchange.block-size": "8kB"}
    )
    exchange = manager.create_exchange(ExchangeContext("q21", "e"), 4)
    sink_handle = exchange.add_sink(0)
    gate = threading.Event()
    real_create = manager.client.create

    def stalled_create(path, **kwargs):
        gate.wait(30)
        return real_create(path, **kwargs)

    monkeypatch.setattr(manager.client, "create", stalled_create)
    sink = manager.create_sink(exchange.instantiate_sink(sink_handle, 0))
    added = 0
    done = threading.Event()

    def producer():
        nonlocal added
        for i in range(2000):
            sink.add(i % 4, b"r" * 500)
            added += 1
        done.set()

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    assert not done.wait(1.0)  # blocked: storage is stalled and the budget is full
    assert added < 2000
    assert sink.memory_usage <= (64 << 10) + 4 * 508 + (8 << 10)
    gate.set()
    assert done.wait(30)
    sink.finish()
    exchange.close()
