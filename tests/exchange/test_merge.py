"""Partition-contiguous files, shared reads and merged small pieces: fewer requests, same data."""

from __future__ import annotations

import pickle

import pytest

import exchange_store as xs
from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.exchange.manager import ExchangeManager

from ._helpers import expected_by_partition, read_all, records_for

MERGE = {"exchange.merge-on-local-filesystem": "true", "exchange.block-size": "8kB"}


def _write(manager, exchange, maps: int, partitions: int, per_map: int):
    sinks = [exchange.add_sink(t) for t in range(maps)]
    exchange.no_more_sinks()
    written = []
    for t, handle in enumerate(sinks):
        records = records_for(t, partitions, per_map, size=300)
        written += records
        sink = manager.create_sink(exchange.instantiate_sink(handle, 0))
        for p, r in records:
            sink.add(p, r)
        exchange.sink_finished(handle, 0, sink.finish())
    exchange.all_required_sinks_finished()
    return written


def test_map_files_hold_their_partitions_in_order(local_backend) -> None:
    manager = local_backend.manager({"exchange.merge-threshold": "0B"})
    exchange = manager.create_exchange(xs.ExchangeContext("contig", "e"), 16)
    _write(manager, exchange, 2, 16, 400)
    manifest = exchange._manifests[0]  # the commit's block index, in file order
    order = [b.partition for f in manifest.files for b in f.summary.blocks]
    assert order == sorted(order) and len(set(order)) == 16
    exchange.close()


@pytest.mark.parametrize("preserve_order", [False, True])
def test_merged_pieces_read_back_exactly(backend, preserve_order) -> None:
    manager = backend.manager(MERGE)
    exchange = manager.create_exchange(
        xs.ExchangeContext("merge", f"e{int(preserve_order)}"), 40, preserve_order
    )
    written = _write(manager, exchange, 6, 40, 200)
    handles = exchange.get_source_handles()
    assert all(h.locations for h in handles)  # every piece was copied into a merged file
    handles = pickle.loads(pickle.dumps(handles))
    got = {}
    for h in handles:
        records = read_all(manager, [h])
        got.setdefault(h.partition_id, []).extend(records)
        if preserve_order:  # each task partition's records of h come in write order
            for t in range(6):
                mine = [r for r in records if r.startswith(b"tp%d-" % t)]
                want = [r for p, r in records_for(t, 40, 200, size=300) if p == h.partition_id]
                assert mine == want
    assert {p: sorted(v) for p, v in got.items()} == {
        p: sorted(c.elements()) for p, c in expected_by_partition(written).items()
    }
    exchange.close()
    assert backend.files(manager) == []


def test_one_read_per_partition_after_merging(local_backend) -> None:
    plain = local_backend.manager(MERGE)
    counting = CountingFileSystemClient(plain.client)
    manager = ExchangeManager(plain.config, counting)
    exchange = manager.create_exchange(xs.ExchangeContext("gets", "e"), 50)
    _write(manager, exchange, 8, 50, 250)
    handles = exchange.get_source_handles()
    counting.reset()
    for h in handles:  # one source per partition
        read_all(manager, [h])
    assert counting.snapshot().get("read_range", 0) == len(handles) == 50
    counting.reset()
    read_all(manager, handles)  # one source for all: neighbours share reads
    assert counting.snapshot().get("read_range", 0) <= 2
    exchange.close()


def test_damaged_merged_file_raises_integrity_error(local_backend) -> None:
    manager = local_backend.manager(MERGE)
    exchange = manager.create_exchange(xs.ExchangeContext("mdamage", "e"), 10)
    _write(manager, exchange, 3, 10, 100)
    handles = exchange.get_source_handles()
    merged = sorted({loc for h in handles for loc in h.locations})
    assert merged and all("/_merged/" in m for m in merged)
    with open(merged[0], "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(xs.IntegrityError):
        read_all(manager, handles)
    exchange.close()
    assert local_backend.files(manager) == []
