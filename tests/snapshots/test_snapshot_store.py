"""The snapshot store on local storage and on S3 (moto): lifecycle, expiry, retention, restore."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time

import pytest

from exchange_store.errors import CommitConflictError, IntegrityError, InvalidArgumentError
from exchange_store.snapshots import (
    RetentionPolicy,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    TooManyPendingSnapshotsError,
    paths,
)

from ._child import write_forever
from .conftest import KEY, Backend, Clock, StoreFactory


def _state(task: str, n: int = 3) -> list[bytes]:
    return [f"{task}:{i}:".encode() * (1000 + i) for i in range(n)]


def _names(store, directory: str) -> set[str]:
    return {i.name for i in store.client.list(directory)}


def test_complete_and_read_back(make_store: StoreFactory) -> None:
    store = make_store()
    pending = store.begin("job-1", ["t0", "t1", "t2"])
    assert (pending.job_id, pending.snapshot_id, pending.savepoint) == ("job-1", 1, False)
    for task in pending.task_ids:
        with store.open_task_writer(pending.task_handle(task)) as w:
            for chunk in _state(task):
                w.write(chunk)
    snap = pending.complete()
    assert snap.snapshot_id == 1 and snap.task_ids == ("t0", "t1", "t2")
    assert snap.size > 0 and snap.completed_at >= snap.created_at
    assert store.latest("job-1") == snap == store.restore("job-1")
    for task in snap.task_ids:
        assert b"".join(store.read_task_state(snap, task)) == b"".join(_state(task))
    # Ids increase per job; the empty state is a state too.
    second = store.begin("job-1", ["t0"])
    assert second.snapshot_id == 2
    store.write_task_state(second.task_handle("t0"), b"")
    snap2 = store.complete("job-1", 2)
    assert b"".join(store.read_task_state(snap2, "t0")) == b""
    assert [s.snapshot_id for s in store.list_snapshots("job-1")] == [1, 2]
    assert store.list_jobs() == ["job-1"]
    assert store.pending("job-1") == []
    # Completing again returns the same snapshot (idempotent), and it stays immutable.
    assert store.complete("job-1", 2) == snap2
    with pytest.raises(SnapshotStateError, match="completed"):
        store.write_task_state(second.task_handle("t0"), b"again")


def test_incomplete_refuses_naming_missing_tasks(make_store: StoreFactory) -> None:
    store = make_store()
    pending = store.begin("job", ["a", "b", "c"])
    store.write_task_state(pending.task_handle("b"), b"state-b")
    with pytest.raises(SnapshotIncompleteError, match=r"2 of 3 task\(s\).*a, c") as info:
        pending.complete()
    assert info.value.missing == ("a", "c")
    assert store.latest("job") is None
    assert pending.committed_tasks() == ("b",)
    store.write_task_state(pending.task_handle("a"), [b"state", b"-a"])
    store.write_task_state(pending.task_handle("c"), b"state-c")
    snap = pending.complete()
    assert store.read_task_state_bytes(snap, "a") == b"state-a"
    with pytest.raises(InvalidArgumentError, match="'zz' is not part of snapshot 1"):
        pending.task_handle("zz")
    with pytest.raises(SnapshotNotFoundError, match="'zz' is not in snapshot"):
        store.read_task_state(snap, "zz")


def test_writer_exception_aborts_and_leaves_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    pending = store.begin("job", ["t"])
    with (
        pytest.raises(RuntimeError, match="task failed"),
        store.open_task_writer(pending.task_handle("t")) as w,
    ):
        w.write(b"x" * 100_000)
        raise RuntimeError("task failed")
    assert _names(store, pending.path) == {"_pending", "_lease"}
    with pytest.raises(SnapshotIncompleteError):
        pending.complete()
    store.write_task_state(pending.task_handle("t"), b"retry")
    assert store.read_task_state_bytes(pending.complete(), "t") == b"retry"


def test_second_attempt_of_a_task_loses(make_store: StoreFactory) -> None:
    store = make_store()
    pending = store.begin("job", ["t"])
    handle = pending.task_handle("t")
    slow = store.open_task_writer(handle)
    slow.write(b"slow attempt")
    store.write_task_state(handle, b"fast attempt")
    with pytest.raises(CommitConflictError, match="already committed by another attempt"):
        slow.commit()
    snap = pending.complete()
    assert store.read_task_state_bytes(snap, "t") == b"fast attempt"
    assert sum(1 for n in _names(store, snap.path) if n.endswith(".state")) == 1


def test_expiry_with_injected_clock(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store({"snapshot.timeout": "30s"})
    pending = store.begin("job", ["t0", "t1"])
    handle0, handle1 = pending.task_handle("t0"), pending.task_handle("t1")
    store.write_task_state(handle0, b"partial state")
    clock.advance(29)
    assert store.expire_pending() == []
    clock.advance(1)
    assert store.expire_pending() == [("job", 1)]
    assert store.expire_pending() == []
    # Partial state is gone; only the begin record and the outcome stay (a tombstone).
    assert _names(store, pending.path) == {"_pending", "_metadata", "_expired"}
    assert store.pending("job") == [] and store.latest("job") is None
    with pytest.raises(SnapshotExpiredError, match="task 't1' of snapshot 1 of job 'job'"):
        store.open_task_writer(handle1)
    with pytest.raises(SnapshotExpiredError, match="expired"):
        pending.complete()
    # An expired snapshot does not block the next one.
    nxt = store.begin("job", ["t0"])
    assert nxt.snapshot_id == 2
    store.write_task_state(nxt.task_handle("t0"), b"fresh")
    assert nxt.complete().snapshot_id == 2
    # The tombstone goes once the newer snapshot completed.
    assert not store.client.exists(paths.pending_path(pending.path))


def test_commit_after_expiry_is_refused(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store({"snapshot.timeout": "10s"})
    pending = store.begin("job", ["t"])
    writer = store.open_task_writer(pending.task_handle("t"))
    writer.write(b"a" * 50_000)
    clock.advance(11)  # the deadline passes while the task writes
    with pytest.raises(SnapshotExpiredError, match="refusing state of task 't' of snapshot 1"):
        writer.commit()
    assert not any(n.endswith((".state", ".commit")) for n in _names(store, pending.path))
    with pytest.raises(SnapshotExpiredError):
        pending.complete()
    assert store.latest("job") is None


def test_expiry_by_another_coordinator_wins_over_a_late_commit(
    make_store: StoreFactory, clock: Clock
) -> None:
    store = make_store()
    pending = store.begin("job", ["t"])
    writer = store.open_task_writer(pending.task_handle("t"))
    writer.write(b"state")
    later = Clock(clock.now + 3600)
    other = make_store(clock_fn=later)  # another process whose clock says "overdue"
    assert other.expire_pending() == [("job", 1)]
    with pytest.raises(SnapshotExpiredError):
        writer.commit()  # our clock still says "in time": the stored outcome decides
    with pytest.raises(SnapshotExpiredError):
        pending.complete()
    assert store.list_snapshots("job") == []
    # And the other way round: once complete, expiry does nothing.
    p2 = store.begin("job", ["t"])
    store.write_task_state(p2.task_handle("t"), b"ok")
    snap = p2.complete()
    later.advance(3600)
    assert other.expire_pending() == []
    assert other.latest("job") == snap


def test_abort(make_store: StoreFactory) -> None:
    store = make_store()
    p = store.begin("job", ["t"])
    handle = p.task_handle("t")
    assert store.abort("job", 1) is True
    assert store.abort("job", 1) is False
    with pytest.raises(SnapshotExpiredError):
        store.write_task_state(handle, b"late")
    with pytest.raises(SnapshotNotFoundError):
        store.abort("job", 99)
    p2 = store.begin("job", ["t"])
    store.write_task_state(p2.task_handle("t"), b"ok")
    p2.complete()
    assert store.abort("job", 2) is False  # a completed snapshot stays completed
    assert store.latest("job").snapshot_id == 2  # type: ignore[union-attr]


def test_max_concurrent(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store({"snapshot.max-concurrent": "2", "snapshot.timeout": "1m"})
    store.begin("job", ["t"])
    store.begin("job", ["t"])
    with pytest.raises(TooManyPendingSnapshotsError, match=r"job 'job' already has 2 .*\(1, 2\)"):
        store.begin("job", ["t"])
    store.begin("other-job", ["t"])  # per job
    clock.advance(61)
    assert store.begin("job", ["t"]).snapshot_id == 3  # the overdue ones were expired


def test_retention_keeps_newest_checkpoints_and_savepoints(make_store: StoreFactory) -> None:
    store = make_store({"snapshot.retained-count": "2"})

    def take(savepoint: bool = False) -> int:
        p = store.begin("job", ["t"], savepoint=savepoint)
        store.write_task_state(p.task_handle("t"), f"state {p.snapshot_id}".encode())
        return p.complete().snapshot_id

    assert take() == 1
    assert take(savepoint=True) == 2
    for _ in range(4):
        take()
    snaps = store.list_snapshots("job")
    assert [(s.snapshot_id, s.savepoint) for s in snaps] == [(2, True), (5, False), (6, False)]
    assert store.latest("job").snapshot_id == 6  # type: ignore[union-attr]
    savepoint = snaps[0]
    assert store.read_task_state_bytes(savepoint, "t") == b"state 2"
    assert savepoint.path.endswith("/sp-0000000002")
    # A rule-based policy never takes a savepoint; only delete_snapshot does.
    assert store.apply_retention("job", RetentionPolicy().keep_last(1)) == [snaps[1]]
    store.delete_snapshot("job", 2)
    assert [s.snapshot_id for s in store.list_snapshots("job")] == [6]
    with pytest.raises(SnapshotNotFoundError, match="no snapshot 2 of job 'job'"):
        store.delete_snapshot("job", 2)
    # A savepoint is the newest snapshot when it is the newest.
    assert take(savepoint=True) == 7
    assert store.restore("job").savepoint  # type: ignore[union-attr]


def test_restart_sees_the_same_snapshots(make_store: StoreFactory) -> None:
    first = make_store()
    p1 = first.begin("job", ["a", "b"])
    for t in ("a", "b"):
        first.write_task_state(p1.task_handle(t), t.encode() * 10)
    snap = p1.complete()
    p2 = first.begin("job", ["a", "b"])
    first.write_task_state(p2.task_handle("a"), b"half")
    handle_b = pickle.loads(pickle.dumps(p2.task_handle("b")))
    first.close()  # the coordinator dies with snapshot 2 pending

    second = make_store()
    assert second.list_jobs() == ["job"]
    assert second.list_snapshots("job") == [snap]
    restored = second.restore("job")
    assert restored == snap
    assert second.read_task_state_bytes(restored, "b") == b"b" * 10  # type: ignore[arg-type]
    [pending] = second.pending("job")
    assert (pending.snapshot_id, pending.task_ids, pending.committed_tasks()) == (
        2,
        ("a", "b"),
        ("a",),
    )
    second.write_task_state(handle_b, b"other half")
    snap2 = pending.complete()
    assert second.restore("job") == snap2
    assert second.read_task_state_bytes(snap2, "a") == b"half"
    second.drop_job("job")
    assert second.list_jobs() == [] and second.latest("job") is None
    # A dropped job starts again at id 1.
    assert second.begin("job", ["a"]).snapshot_id == 1


def test_lease_is_kept_while_pending(make_store: StoreFactory) -> None:
    from exchange_store.filesystems.lease import read_lease

    store = make_store()
    pending = store.begin("job", ["t"])
    lease = read_lease(store.client, paths.lease_path(pending.path))
    assert lease is not None and lease.owner == "snapshot job/1" and lease.pid == os.getpid()
    store.write_task_state(pending.task_handle("t"), b"x")
    pending.complete()
    assert read_lease(store.client, paths.lease_path(pending.path)) is None


def test_concurrent_begins_get_distinct_ids(make_store: StoreFactory) -> None:
    stores = [make_store({"snapshot.max-concurrent": "100"}) for _ in range(3)]
    ids: list[int] = []
    lock = threading.Lock()

    def run(store) -> None:
        for _ in range(2):
            p = store.begin("job", ["t"])
            with lock:
                ids.append(p.snapshot_id)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == list(range(1, 7))


def test_wrong_key_and_tampering_raise_integrity_error(make_store: StoreFactory) -> None:
    store = make_store()
    p = store.begin("job", ["t"])
    store.write_task_state(p.task_handle("t"), b"secret state" * 1000)
    snap = p.complete()
    raw = b"".join(
        store.client.read_file(i.path)
        for i in store.client.walk(snap.path)
        if i.name.endswith(".state")
    )
    assert b"secret state" not in raw  # encrypted at rest

    wrong = make_store(key=bytes(32))
    with pytest.raises(IntegrityError, match="_metadata"):
        wrong.list_snapshots("job")
    with pytest.raises(IntegrityError):
        b"".join(wrong.read_task_state(snap, "t"))

    # Flip one byte of the state file: reading raises, never returns wrong bytes.
    [state] = [i.path for i in store.client.list(snap.path) if i.name.endswith(".state")]
    data = bytearray(store.client.read_file(state))
    data[len(data) // 2] ^= 0x01
    store.client.write_file(state, bytes(data))
    fresh = make_store()
    with pytest.raises(IntegrityError):
        b"".join(fresh.read_task_state(fresh.latest("job"), "t"))  # type: ignore[arg-type]
    # Truncated state is caught too.
    store.client.write_file(state, bytes(data[:-7]))
    with pytest.raises(IntegrityError):
        b"".join(fresh.read_task_state(snap, "t"))


def test_unencrypted_store(make_store: StoreFactory) -> None:
    store = make_store(
        {"snapshot.encryption-enabled": "false", "snapshot.compression-codec": "ZSTD"}, key=None
    )
    assert not store.encrypted
    p = store.begin("job", ["t"])
    payload = b"plain but compressible " * 5000
    store.write_task_state(p.task_handle("t"), payload)
    snap = p.complete()
    assert snap.size < len(payload) // 10
    assert store.read_task_state_bytes(snap, "t") == payload


def test_sigkilled_writer_leaves_no_completed_snapshot(
    make_store: StoreFactory, backend: Backend, clock: Clock
) -> None:
    clock.now = time.time()  # the writer process uses the real clock
    store = make_store({"snapshot.timeout": "1m"})
    pending = store.begin("job", ["t0", "t1"])
    store.write_task_state(pending.task_handle("t1"), b"t1 done")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=write_forever,
        args=(
            backend.properties(),
            backend.filesystems,
            KEY,
            pickle.dumps(pending.task_handle("t0")),
            ready,
        ),
    )
    proc.start()
    try:
        assert ready.wait(60), "the writer process did not start writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert store.latest("job") is None
    with pytest.raises(SnapshotIncompleteError, match="t0"):
        pending.complete()
    with pytest.raises(TooManyPendingSnapshotsError):
        store.begin("job", ["t0", "t1"])
    if backend.name == "local":
        clock.advance(61)  # waiting out snapshot.timeout expires the abandoned one ...
    else:
        assert store.abort_pending("job") == [1]  # ... and so does aborting it at once
    nxt = store.begin("job", ["t0", "t1"])
    assert nxt.snapshot_id == 2
    for t in ("t0", "t1"):
        store.write_task_state(nxt.task_handle(t), t.encode())
    snap = nxt.complete()
    assert [s.snapshot_id for s in store.list_snapshots("job")] == [2]
    assert store.read_task_state_bytes(snap, "t0") == b"t0"
    assert not any(n.endswith(".state") for n in _names(store, pending.path))


def test_records_are_bound_to_their_place(make_store: StoreFactory) -> None:
    store = make_store()
    snaps = []
    for _ in range(2):
        p = store.begin("job", ["a", "b"])
        for t in ("a", "b"):
            store.write_task_state(p.task_handle(t), t.encode())
        snaps.append(p.complete())
    # Snapshot 1's metadata copied over snapshot 2's: detected, not silently used.
    meta = store.client.read_file(paths.metadata_path(snaps[0].path))
    store.client.write_file(paths.metadata_path(snaps[1].path), meta)
    with pytest.raises(IntegrityError, match="chk-0000000002/_metadata"):
        make_store().list_snapshots("job")
    # Task a's commit marker passed off as task b's: detected at completion.
    p = store.begin("other", ["a", "b"])
    for t in ("a", "b"):
        store.write_task_state(p.task_handle(t), t.encode())
    marker_a = store.client.read_file(paths.commit_marker_path(p.path, "a"))
    store.client.delete(paths.commit_marker_path(p.path, "b"))
    store.client.write_file(paths.commit_marker_path(p.path, "b"), marker_a)
    with pytest.raises(IntegrityError, match=r"b\.commit"):
        p.complete()
