"""Runs of one instance, receipts, fencing after close, exclusive creation, handle size."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest

import exchange_store as xs
from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.exchange.manager import ExchangeManager

from ._helpers import expected_by_partition, read_all, records_for


def _setup(backend, query: str, partitions: int = 3):
    manager = backend.manager()
    exchange = manager.create_exchange(xs.ExchangeContext(query, "e"), partitions)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    return manager, exchange, sink, exchange.instantiate_sink(sink, 0)


def _write(manager, instance, records):
    s = manager.create_sink(instance)
    for p, r in records:
        s.add(p, r)
    return s


def _read_partitions(manager, exchange):
    exchange.all_required_sinks_finished()
    out = {}
    for h in exchange.get_source_handles():
        out.setdefault(h.partition_id, []).extend(read_all(manager, [h]))
    return {p: sorted(v) for p, v in out.items()}


def _expected(records):
    return {p: sorted(c.elements()) for p, c in expected_by_partition(records).items()}


def test_second_run_finish_returns_first_commit_and_keeps_it(backend) -> None:
    records = records_for(0, 3, 40)
    manager, exchange, sink, instance = _setup(backend, "runs1")
    first = _write(manager, instance, records)
    receipt = first.finish()
    assert receipt.records == 40 and receipt.attempt_id == 0
    assert sum(receipt.partition_sizes.values()) == receipt.data_size > 0
    second = _write(manager, instance, records)
    assert second.finish() == receipt  # the commit of the first run, not a conflict
    second.abort()  # after finish: a no-op, never touches the commit
    manager.create_sink(instance).abort()  # a third run that aborts at once
    assert manager.committed_receipt(instance) == receipt
    exchange.sink_finished(sink, 0)
    assert _read_partitions(manager, exchange) == _expected(records)
    exchange.close()
    assert backend.files(manager) == []


def test_abort_of_a_running_second_run_keeps_the_commit(backend) -> None:
    records = records_for(1, 3, 40)
    manager, exchange, sink, instance = _setup(backend, "runs2")
    second = _write(manager, instance, records)  # starts first, still running
    receipt = _write(manager, instance, records).finish()
    second.abort()
    exchange.sink_finished(sink, 0, receipt)
    assert _read_partitions(manager, exchange) == _expected(records)
    exchange.close()
    assert backend.files(manager) == []


def test_concurrent_runs_commit_exactly_once(backend) -> None:
    records = records_for(2, 3, 200)
    manager, exchange, sink, instance = _setup(backend, "runs3")
    receipts = []
    barrier = threading.Barrier(4)

    def run() -> None:
        s = _write(manager, instance, records)
        barrier.wait()
        receipts.append(s.finish())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(receipts) == 4 and len({r.run_id for r in receipts}) == 1
    exchange.sink_finished(sink, 0, receipts[0])
    assert _read_partitions(manager, exchange) == _expected(records)
    # Only the committed run's files are left before close.
    runs = {f.split("/")[-2] for f in backend.files(manager) if f.endswith(".xsf")}
    assert runs == {receipts[0].run_id}
    exchange.close()
    assert backend.files(manager) == []


def test_receipt_is_picklable_small_and_checked(backend) -> None:
    manager, exchange, sink, instance = _setup(backend, "runs4")
    receipt = _write(manager, instance, records_for(3, 3, 30)).finish()
    again = pickle.loads(pickle.dumps(receipt))
    assert again == receipt and len(pickle.dumps(receipt)) < 2048
    assert instance.key is None or instance.key not in pickle.dumps(receipt)
    other = exchange.instantiate_sink(sink, 1)
    with pytest.raises(xs.InvalidArgumentError, match="attempt 0 was given for"):
        exchange.sink_finished(sink, 1, receipt)
    forged = xs.ExchangeSinkReceipt(
        **{**{f: getattr(receipt, f) for f in receipt.__dataclass_fields__}, "manifest": b"x" * 64}
    )
    with pytest.raises(xs.IntegrityError):
        exchange.sink_finished(sink, 0, forged)
    assert manager.committed_receipt(other) is None
    exchange.sink_finished(sink, 0, receipt)
    exchange.close()


def test_sink_finished_with_receipts_makes_no_storage_request(local_backend) -> None:
    manager = local_backend.manager()
    counting = CountingFileSystemClient(manager.client)
    coordinator = ExchangeManager(manager.config, counting)
    exchange = coordinator.create_exchange(xs.ExchangeContext("runs5", "e"), 4)
    sinks = [exchange.add_sink(t) for t in range(20)]
    exchange.no_more_sinks()
    receipts = []
    for t, handle in enumerate(sinks):
        instance = exchange.instantiate_sink(handle, 0)
        receipts.append(_write(manager, instance, records_for(t, 4, 10)).finish())

    def reads() -> int:  # the lease refresher may write meanwhile: count reads only
        calls = counting.snapshot()
        return sum(calls.get(op, 0) for op in ("read_file", "read_range", "info", "list"))

    before = reads()
    for handle, receipt in zip(sinks, receipts, strict=True):
        exchange.sink_finished(handle, 0, receipt)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert reads() == before  # no request: receipts carry the sealed manifests
    assert sum(h.record_count for h in handles) == 200
    exchange.close()


def test_late_sink_after_close_raises_and_recreates_nothing(backend) -> None:
    manager, exchange, _, instance = _setup(backend, "runs6")
    running = _write(manager, instance, records_for(4, 3, 20))  # started before close
    exchange.close()
    assert backend.files(manager) == []
    with pytest.raises(xs.ExchangeClosedError, match="runs6/e"):
        running.finish()
    late = manager.create_sink(instance)  # a sink created after close
    for p, r in records_for(5, 3, 400, size=4000):  # more than a block: the writer starts
        late.add(p, r)
    with pytest.raises(xs.ExchangeClosedError):
        late.finish()
    late.abort()
    assert backend.files(manager) == []
    if backend.name == "local":  # not even an empty directory
        for base in manager.base_directories:
            assert not (Path(base) / "runs6").exists()


def test_create_exchange_that_exists_on_storage_is_refused(backend) -> None:
    first = backend.manager()
    second = backend.manager()
    exchange = first.create_exchange(xs.ExchangeContext("runs7", "e"), 2)
    with pytest.raises(xs.InvalidArgumentError, match=r"runs7/e already exists on storage"):
        second.create_exchange(xs.ExchangeContext("runs7", "e"), 2)
    exchange.close()
    second.create_exchange(xs.ExchangeContext("runs7", "e"), 2).close()  # gone: may be reused


def test_iterating_without_no_more_source_handles_raises_at_once(local_backend) -> None:
    manager = local_backend.manager()
    source = manager.create_source()
    assert source.read() is None
    with pytest.raises(xs.InvalidArgumentError, match="no_more_source_handles"):
        next(iter(source))
    with pytest.raises(xs.InvalidArgumentError, match="no_more_source_handles"):
        list(source)
    source.no_more_source_handles()
    assert list(source) == []
    source.close()


def test_one_handle_per_partition_with_compact_pieces(local_backend) -> None:
    manager = local_backend.manager()
    exchange = manager.create_exchange(xs.ExchangeContext("runs8", "e"), 8)
    sinks = [exchange.add_sink(t) for t in range(60)]
    exchange.no_more_sinks()
    for t, handle in enumerate(sinks):
        receipt = _write(manager, exchange.instantiate_sink(handle, 0), records_for(t, 8, 16))
        exchange.sink_finished(handle, 0, receipt.finish())
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert sorted(h.partition_id for h in handles) == list(range(8))  # 60 files each, one handle
    pieces = sum(h.file_count for h in handles)
    assert pieces == 60 * 8
    per_piece = len(pickle.dumps(handles)) / pieces
    assert per_piece < 64, per_piece
    assert sum(len(read_all(manager, [h])) for h in handles) == 60 * 16
    exchange.close()
