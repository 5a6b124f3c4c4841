"""The exchange lifecycle of API.md, on the local filesystem and on S3 (moto)."""

from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
import signal
import time

import pytest

from exchange_store.errors import (
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
)
from exchange_store.exchange.exchange import AttemptNotCommittedError, ExchangeStateError
from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.paths import parse_exchange_path
from exchange_store.filesystems.lease import read_lease

from ._helpers import (
    by_partition,
    expected_by_partition,
    read_all,
    records_for,
    write_attempt,
)
from ._workers import sink_worker


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


SMALL = {"exchange.block-size": "4kB", "exchange.sink-max-file-size": "16kB"}


def test_round_trip_dedup_and_close(backend):
    """Several task partitions, two identical committed attempts of one: data exactly once."""
    manager = backend.manager(SMALL)
    exchange = manager.create_exchange(ExchangeContext("q1", "stage-1"), 5)
    sinks = [exchange.add_sink(tp) for tp in range(3)]
    exchange.no_more_sinks()
    expected = []
    for sink in sinks:
        records = records_for(sink.task_partition_id, 4, 600, size=37)  # partition 4 stays empty
        expected += records
        write_attempt(manager, exchange, sink, 0, records)
        if sink.task_partition_id == 1:  # a second, identical attempt also commits
            write_attempt(manager, exchange, sink, 1, records)
    exchange.sink_finished(sinks[1], 1)  # the first reported attempt is the one read
    for sink in sinks:
        exchange.sink_finished(sink, 0)
    assert exchange.selected_attempts() == {0: 0, 1: 1, 2: 0}
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert {h.partition_id for h in handles} == {0, 1, 2, 3}  # no handle for empty partition 4
    assert all(h.data_size > 0 for h in handles)
    assert by_partition(manager, handles) == expected_by_partition(expected)
    # every file the handles name belongs to a selected attempt
    for h in handles:
        for f in h.files:
            assert exchange.selected_attempts()[f.task_partition_id] == f.attempt_id
    # the lease exists in every base directory while open
    for base in manager.base_directories:
        lease = read_lease(manager.client, f"{base}/q1/stage-1/_lease")
        assert lease is not None and lease.owner == "exchange q1/stage-1"
    exchange.close()
    assert backend.files(manager) == []
    exchange.close()  # idempotent
    with pytest.raises(ExchangeStateError):
        exchange.add_sink(7)


def test_aborted_attempt_reported_finished(backend):
    manager = backend.manager(SMALL)
    exchange = manager.create_exchange(ExchangeContext("q2", "e"), 2)
    s0, s1 = exchange.add_sink(0), exchange.add_sink(1)
    exchange.no_more_sinks()
    # tp 0: attempt 0 aborted after writing; reported first -> error naming it
    inst = exchange.instantiate_sink(s0, 0)
    sink = manager.create_sink(inst)
    for p, data in records_for(0, 2, 2000, size=50):
        sink.add(p, data)
    sink.abort()
    sink.add(0, b"ignored after abort")
    assert not [f for f in backend.files(manager) if "/0/data" in f]
    with pytest.raises(AttemptNotCommittedError) as err:
        exchange.sink_finished(s0, 0)
    assert "q2/e" in str(err.value) and "task partition 0" in str(err.value)
    assert "attempt 0" in str(err.value)
    # a later committed attempt of tp 0 can still be selected
    good = records_for(0, 2, 100)
    write_attempt(manager, exchange, s0, 1, good)
    exchange.sink_finished(s0, 1)
    # tp 1: committed attempt 0 selected; aborted attempt 1 reported later is ignored
    write_attempt(manager, exchange, s1, 0, records_for(1, 2, 100))
    exchange.sink_finished(s1, 0)
    late = manager.create_sink(exchange.instantiate_sink(s1, 1))
    late.add(0, b"late")
    late.abort()
    exchange.sink_finished(s1, 1)
    exchange.all_required_sinks_finished()
    got = collections.Counter(read_all(manager, exchange.get_source_handles()))
    want = collections.Counter(d for _, d in good + records_for(1, 2, 100))
    assert got == want
    exchange.close()
    assert backend.files(manager) == []


def test_only_attempt_is_two_and_unreported_task_partition(backend):
    manager = backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q3", "e"), 3)
    s0 = exchange.add_sink(0)
    exchange.add_sink(1)
    exchange.no_more_sinks()
    write_attempt(manager, exchange, s0, 2, [(1, b"x"), (1, b""), (2, b"y")])
    exchange.sink_finished(s0, 2)
    exchange.all_required_sinks_finished()
    with pytest.raises(AttemptNotCommittedError, match="task partition 1"):
        exchange.get_source_handles()  # tp 1 never finished: refusing to lose its data
    exchange.close()

    exchange = manager.create_exchange(ExchangeContext("q3", "e2"), 3)
    s0 = exchange.add_sink(0)
    write_attempt(manager, exchange, s0, 2, [(1, b"x"), (1, b""), (2, b"y")])
    with pytest.raises(ExchangeStateError, match="all_required_sinks_finished"):
        exchange.get_source_handles()
    exchange.sink_finished(s0, 2)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert sorted(h.partition_id for h in handles) == [1, 2]
    assert by_partition(manager, handles) == {
        1: collections.Counter({b"x": 1, b"": 1}),
        2: collections.Counter({b"y": 1}),
    }
    exchange.close()


def test_empty_exchange_has_no_handles(backend):
    manager = backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q4", "e"), 4)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    write_attempt(manager, exchange, sink, 0, [])
    exchange.sink_finished(sink, 0)
    exchange.all_required_sinks_finished()
    assert exchange.get_source_handles() == []
    source = manager.create_source([])
    assert source.read() is None
    assert not source.is_finished
    source.no_more_source_handles()
    source.no_more_source_handles()
    assert source.is_finished
    assert list(source) == []
    source.close()
    exchange.close()


@pytest.mark.parametrize("count", [10_001, 20_000])
def test_partition_count_limit(local_backend, count):
    manager = local_backend.manager()
    with pytest.raises(InvalidArgumentError, match="Max number of output partitions exceeded"):
        manager.create_exchange(ExchangeContext("q", "e"), count)
    small = local_backend.manager({"exchange.max-output-partition-count": "3"})
    with pytest.raises(
        InvalidArgumentError, match="Max number of output partitions exceeded for exchange"
    ):
        small.create_exchange(ExchangeContext("q", "e"), 4)
    small.create_exchange(ExchangeContext("q", "e"), 3).close()
    for bad in (0, -1, True, "3"):
        with pytest.raises(InvalidArgumentError):
            small.create_exchange(ExchangeContext("q", "e"), bad)


def test_big_records_and_file_rotation(backend):
    """Records of 0, 1 byte up to max-page-storage-size; files rotate at sink-max-file-size."""
    big = 16 << 20 if backend.name == "local" else 6 << 20
    manager = backend.manager(
        {
            "exchange.sink-max-file-size": "1MB",
            "exchange.max-page-storage-size": str(big) + "B",
            "exchange.compression-codec": "NONE",
        }
    )
    exchange = manager.create_exchange(ExchangeContext("q5", "e"), 3)
    sink_handle = exchange.add_sink(0)
    instance = exchange.instantiate_sink(sink_handle, 0)
    rng = __import__("random").Random(5)
    records = [(0, b""), (1, b"a"), (2, os.urandom(big)), (0, bytearray(b"\x00" * 70_000))]
    records += [(rng.randrange(3), os.urandom(rng.randrange(0, 300_000))) for _ in range(10)]
    records.append((1, memoryview(os.urandom(big // 2))))
    with manager.create_sink(instance) as sink:
        for p, data in records:
            sink.add(p, data)
        with pytest.raises(InvalidArgumentError, match="max-page-storage-size"):
            sink.add(0, b"z" * (big + 1))
    manifest = sink.manifest
    assert manifest is not None and len(manifest.files) >= 3  # rotated
    exchange.sink_finished(sink_handle, 0)
    exchange.all_required_sinks_finished()
    got = by_partition(manager, exchange.get_source_handles())
    assert got == expected_by_partition((p, bytes(d)) for p, d in records)
    exchange.close()
    assert backend.files(manager) == []


def test_preserve_order(backend):
    manager = backend.manager(
        {
            "exchange.block-size": "1kB",
            "exchange.sink-max-file-size": "8kB",
            "exchange.source-handle-target-data-size": "4kB",
            "exchange.sink-max-buffer-size": "8kB",
            "exchange.source-concurrent-readers": "4",
        }
    )
    exchange = manager.create_exchange(ExchangeContext("q6", "e"), 3, preserve_order=True)
    sinks = [exchange.add_sink(tp) for tp in range(4)]
    for sink in sinks:
        records = [
            (i % 3, f"{sink.task_partition_id}:{i}:".encode() + os.urandom(i % 50))
            for i in range(3000)
        ]
        write_attempt(manager, exchange, sink, 0, records)
        exchange.sink_finished(sink, 0)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    assert len(handles) > 3  # cut near the target size
    source = manager.create_source(handles)
    source.no_more_source_handles()
    seen: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for record in source:
        tp, i, _ = record.split(b":", 2)
        seen[(int(i) % 3, int(tp))].append(int(i))
    for (p, tp), order in seen.items():
        assert order == sorted(order), (p, tp)
        assert len(order) == 1000
    assert len(seen) == 12
    exchange.close()


def test_sink_in_another_process(backend):
    props = backend.properties(SMALL)
    manager = backend.manager(SMALL)
    exchange = manager.create_exchange(ExchangeContext("q7", "e"), 4)
    sink = exchange.add_sink(0)
    instance = exchange.instantiate_sink(sink, 0)
    records = records_for(0, 4, 3000, size=40)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=sink_worker,
        args=(props, backend.filesystems, pickle.dumps(instance), records, True, ready),
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    exchange.sink_finished(sink, 0)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    handles = pickle.loads(pickle.dumps(handles))
    assert by_partition(manager, handles) == expected_by_partition(records)
    exchange.close()
    assert backend.files(manager) == []


def test_sigkilled_attempt_is_never_read(backend):
    extra = {
        "exchange.block-size": "1kB",
        "exchange.sink-max-file-size": "2kB",
        "exchange.sink-max-buffer-size": "8kB",  # spills before finish: files on storage
        "exchange.compression-codec": "NONE",
    }
    props = backend.properties(extra)
    manager = backend.manager(extra)
    exchange = manager.create_exchange(ExchangeContext("q8", "e"), 2)
    sink = exchange.add_sink(0)
    instance = exchange.instantiate_sink(sink, 0)
    records = [(i % 2, os.urandom(100)) for i in range(400)]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=sink_worker,
        args=(props, backend.filesystems, pickle.dumps(instance), records, False, ready),
    )
    proc.start()
    try:
        assert ready.wait(60)
        deadline = time.monotonic() + 30
        while not [f for f in backend.files(manager) if f.endswith(".xsf")]:
            assert time.monotonic() < deadline, "the worker wrote no data file"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert any(f.endswith(".xsf") for f in backend.files(manager))
    with pytest.raises(AttemptNotCommittedError):
        exchange.sink_finished(sink, 0)
    good = records_for(0, 2, 50)
    write_attempt(manager, exchange, sink, 1, good)
    exchange.sink_finished(sink, 1)
    exchange.all_required_sinks_finished()
    assert by_partition(manager, exchange.get_source_handles()) == expected_by_partition(good)
    exchange.close()
    assert backend.files(manager) == []


def test_handles_pickle_and_hide_the_key(local_backend):
    manager = local_backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q9", "e"), 2)
    sink = exchange.add_sink(0)
    instance = exchange.instantiate_sink(sink, 0)
    assert instance.key is not None and len(instance.key) == 32
    for text in (repr(instance), str(instance)):
        assert instance.key.hex() not in text and repr(instance.key) not in text
    assert pickle.loads(pickle.dumps(instance)) == instance
    assert len(pickle.dumps(instance)) < 1500
    write_attempt(manager, exchange, sink, 0, [(0, b"a"), (1, b"b")])
    exchange.sink_finished(sink, 0)
    exchange.all_required_sinks_finished()
    [h0, h1] = exchange.get_source_handles()
    assert h0.partition_id == 0 and h0.data_size > 0
    assert h0.key == instance.key
    assert h0.key.hex() not in repr(h0) and repr(h0.key) not in str(h0)
    assert pickle.loads(pickle.dumps(h0)) == h0
    # the key is never written to storage
    for path in local_backend.files(manager):
        assert instance.key not in _read(path)
    # handles from another exchange are refused
    other = manager.create_exchange(ExchangeContext("q9", "other"), 2)
    with pytest.raises(InvalidArgumentError, match="another exchange"):
        other.instantiate_sink(sink, 1)
    with pytest.raises(InvalidArgumentError, match="another exchange"):
        other.sink_finished(sink, 0)
    with pytest.raises(InvalidArgumentError):
        other.instantiate_sink(sink, -1)
    # a manager with another configuration refuses the handles, naming what differs
    differs = local_backend.manager({"exchange.compression-codec": "ZSTD"})
    with pytest.raises(InvalidArgumentError, match="compression"):
        differs.create_sink(instance)
    with pytest.raises(InvalidArgumentError, match="compression"):
        differs.create_source([h0])
    elsewhere = local_backend.manager(
        {"exchange.base-directories": local_backend.base_directories[0] + "-x"}
    )
    with pytest.raises(InvalidArgumentError, match="outside the base directories"):
        elsewhere.create_sink(instance)
    unencrypted = local_backend.manager({"exchange.encryption-enabled": "false"})
    with pytest.raises(InvalidArgumentError, match="encryption"):
        unencrypted.create_source([h1])
    other.close()
    exchange.close()


@pytest.mark.parametrize("bad", ["../x", "", "a" * 129, "a/b", "é", None, 3])
def test_context_validates_ids(bad):
    with pytest.raises(InvalidArgumentError):
        ExchangeContext(bad, "e")
    with pytest.raises(InvalidArgumentError):
        ExchangeContext("q", bad)


def test_tampered_manifest_and_data(local_backend):
    manager = local_backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q10", "e"), 2)
    s0, s1 = exchange.add_sink(0), exchange.add_sink(1)
    write_attempt(manager, exchange, s0, 0, records_for(0, 2, 50))
    write_attempt(manager, exchange, s1, 0, records_for(1, 2, 50))
    files = local_backend.files(manager)
    manifest0 = next(f for f in files if "-0/0/_manifest" in f)
    raw = bytearray(_read(manifest0))
    raw[len(raw) // 2] ^= 1
    _write(manifest0, bytes(raw))
    with pytest.raises(IntegrityError):
        exchange.sink_finished(s0, 0)
    # a manifest copied from another attempt is refused too
    manifest1 = next(f for f in files if "-1/0/_manifest" in f)
    _write(manifest0, _read(manifest1))
    with pytest.raises(IntegrityError):
        exchange.sink_finished(s0, 0)
    exchange.sink_finished(s1, 0)
    data1 = next(f for f in files if "-1/0/" in f and f.endswith("/data-0.xsf"))
    raw = bytearray(_read(data1))
    raw[40] ^= 0x10
    _write(data1, bytes(raw))
    write_attempt(manager, exchange, s0, 1, records_for(0, 2, 50))
    exchange.sink_finished(s0, 1)
    exchange.all_required_sinks_finished()
    with pytest.raises(IntegrityError):
        read_all(manager, exchange.get_source_handles())
    exchange.close()


def test_finish_failure_leaves_nothing(local_backend, monkeypatch):
    manager = local_backend.manager(SMALL)
    exchange = manager.create_exchange(ExchangeContext("q11", "e"), 2)
    sink_handle = exchange.add_sink(0)
    sink = manager.create_sink(exchange.instantiate_sink(sink_handle, 0))
    for p, data in records_for(0, 2, 3000, size=64):
        sink.add(p, data)

    def refuse(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager.client, "_write_exclusive", refuse)
    with pytest.raises(ExchangeStoreError, match="_manifest"):
        sink.finish()
    assert [f for f in local_backend.files(manager) if "/0/" in f] == []
    with pytest.raises(InvalidArgumentError):
        sink.add(0, b"after a failed finish")
    monkeypatch.undo()
    with pytest.raises(AttemptNotCommittedError):
        exchange.sink_finished(sink_handle, 0)
    # context manager: an exception aborts
    with (
        pytest.raises(RuntimeError),
        manager.create_sink(exchange.instantiate_sink(sink_handle, 1)) as s,
    ):
        for p, data in records_for(0, 2, 3000, size=64):
            s.add(p, data)
        raise RuntimeError("task failed")
    assert [f for f in local_backend.files(manager) if "/1/" in f] == []
    exchange.close()


def test_sink_argument_errors(local_backend):
    manager = local_backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q12", "e"), 2)
    sink = manager.create_sink(exchange.instantiate_sink(exchange.add_sink(0), 0))
    for bad in (2, -1, True, "0"):
        with pytest.raises(InvalidArgumentError, match="partition"):
            sink.add(bad, b"x")
    with pytest.raises(InvalidArgumentError, match="bytes"):
        sink.add(0, "text")  # type: ignore[arg-type]
    sink.finish()
    sink.finish()  # idempotent
    with pytest.raises(InvalidArgumentError):
        sink.add(0, b"x")
    sink.abort()  # no-op after a commit
    assert sink.manifest is not None
    exchange.no_more_sinks()
    with pytest.raises(ExchangeStateError):
        exchange.add_sink(5)
    assert exchange.add_sink(0) == exchange.add_sink(0)
    with pytest.raises(InvalidArgumentError):
        manager.create_sink("nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        manager.create_source(["nope"])  # type: ignore[list-item]
    exchange.close()


def test_layout_parse_round_trip(local_backend):
    manager = local_backend.manager()
    exchange = manager.create_exchange(ExchangeContext("q13", "e"), 2)
    sink = exchange.add_sink(4)
    write_attempt(manager, exchange, sink, 3, [(0, b"a")])
    kinds = {}
    for path in local_backend.files(manager):
        base = next(b for b in manager.base_directories if path.startswith(b))
        parsed = parse_exchange_path(base, path)
        assert parsed is not None and parsed.query_id == "q13" and parsed.exchange_id == "e"
        kinds[parsed.kind] = parsed
    assert set(kinds) == {"lease", "descriptor", "manifest", "data"}
    assert kinds["data"].task_partition_id == 4 and kinds["data"].attempt_id == 3
    assert kinds["data"].file_index == 0
    exchange.close()


def test_same_exchange_twice_and_key_per_query(local_backend):
    manager = local_backend.manager()
    first = manager.create_exchange(ExchangeContext("q14", "e"), 2)
    with pytest.raises(InvalidArgumentError, match="already open"):
        manager.create_exchange(ExchangeContext("q14", "e"), 2)
    second = manager.create_exchange(ExchangeContext("q14", "e2"), 2)
    other_query = manager.create_exchange(ExchangeContext("q15", "e"), 2)
    key = first.instantiate_sink(first.add_sink(0), 0).key
    assert second.instantiate_sink(second.add_sink(0), 0).key == key  # per query
    assert other_query.instantiate_sink(other_query.add_sink(0), 0).key != key
    for exchange in (first, second, other_query):
        exchange.close()
    again = manager.create_exchange(ExchangeContext("q14", "e"), 2)  # closed: may reopen
    again.close()
    assert local_backend.files(manager) == []
