"""Snapshot store under crashes and corruption.

Crash sweep: a worker process writes task t0's state, commits it and completes the snapshot;
its client SIGKILLs it at operation N (every N in the full sweep). A restarted coordinator
(a new store over the same storage) then sees either no completed snapshot, or one whose
state reads back exactly; a retry completes it with exactly the fault-free state; dropping the
job leaves no byte. Corruption fuzz: random damage to state files, commit markers and the
metadata of a completed snapshot: exact state or IntegrityError, never other bytes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from pathlib import Path

import pytest

from exchange_store.errors import CommitConflictError, IntegrityError, StorageFileNotFoundError
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.faults import FaultPlan, FaultySpec, read_op_log_file

from ._api import snapshot_store
from ._harness import CHILD_TIMEOUT, SPAWN
from .test_corruption import Outcomes, mutate_bytes

KEY = bytes(range(32))
JOB = "job1"
STATE = {
    "t0": [bytes([i]) * (300 + 97 * i) for i in range(12)],
    "t1": [b"t1-" + bytes(range(256)) * 3, b"", b"tail"],
}
EXPECTED = {t: b"".join(chunks) for t, chunks in STATE.items()}


def store_props(bases: list[str], encryption: bool = True) -> dict[str, str]:
    return {
        "snapshot.base-directories": ",".join(bases),
        "snapshot.block-size": "1kB",
        "snapshot.encryption-enabled": str(encryption).lower(),
        "snapshot.timeout": "5m",
    }


def open_store(backend, client=None, encryption: bool = True):
    client = client or load_filesystem(backend.fs_props, backend.base_dirs)
    return snapshot_store().from_properties(
        store_props(backend.base_dirs, encryption), key=KEY if encryption else None, client=client
    )


def _complete_child(spec: FaultySpec, bases: list[str], handle, snapshot_id: int) -> None:
    client = spec.build()
    store = snapshot_store().from_properties(store_props(bases), key=KEY, client=client)
    with store.open_task_writer(handle) as w:
        for chunk in STATE["t0"]:
            w.write(chunk)
    store.complete(JOB, snapshot_id)
    os._exit(0)


def read_snapshot(backend) -> dict[str, bytes] | None:
    store = open_store(backend)  # a restarted coordinator: storage alone
    try:
        snap = store.latest(JOB)
        if snap is None:
            return None
        return {t: b"".join(store.read_task_state(snap, t)) for t in snap.task_ids}
    finally:
        store.close()


def crash_trial(backend, tmp_path, n: int | None, after: bool = False):
    store = open_store(backend)
    pending = store.begin(JOB, ["t0", "t1"])
    store.write_task_state(pending.task_handle("t1"), STATE["t1"])
    log = str(tmp_path / f"snap-{backend.name}-{n}-{after}.log")
    plan = FaultPlan() if n is None else FaultPlan.crash_at(n, after=after)
    spec = FaultySpec(dict(backend.fs_props), tuple(backend.base_dirs), plan, op_log_file=log)
    proc = SPAWN.Process(
        target=_complete_child,
        args=(spec, backend.base_dirs, pending.task_handle("t0"), pending.snapshot_id),
    )
    proc.start()
    proc.join(CHILD_TIMEOUT)
    ops = read_op_log_file(log)
    if n is None:
        assert proc.exitcode == 0
    else:
        assert proc.exitcode == -signal.SIGKILL, (n, proc.exitcode)
    seen = read_snapshot(backend)
    completed_by_crashed = seen is not None
    if seen is not None:
        assert seen == EXPECTED  # completed: exactly the state
    else:
        # The retry: the task re-runs (unless its commit landed) and the snapshot completes.
        with contextlib.suppress(CommitConflictError):
            store.write_task_state(pending.task_handle("t0"), STATE["t0"])
        store.complete(JOB, pending.snapshot_id)
        seen = read_snapshot(backend)
    store.drop_job(JOB)
    store.close()
    return {"ops": ops, "got": seen, "completed": completed_by_crashed, "left": backend.leftovers()}


_snap_ops: dict[str, list] = {}


def snap_ops(backend, tmp_path):
    if backend.name not in _snap_ops:
        result = crash_trial(backend, tmp_path, None)
        assert result["got"] == EXPECTED and result["left"] == []
        _snap_ops[backend.name] = result["ops"]
    return _snap_ops[backend.name]


def _check(figures, result) -> None:
    figures.add("crash_points", "snapshot_points_tried")
    figures.add("crash_points", "snapshot_completed_by_crashed_process", int(result["completed"]))
    figures.add("crash_points", "lost", int(result["got"] != EXPECTED))
    figures.add("crash_points", "leftover_files", len(result["left"]))
    assert result["got"] == EXPECTED
    assert result["left"] == []


@pytest.mark.parametrize("where", ["first", "middle", "task-commit", "metadata", "last-after"])
def test_snapshot_crash_points_subset(backend, tmp_path, figures, where):
    if backend.name != "local" and where != "metadata":
        pytest.skip("S3: one point in the fast suite (the full sweep covers every point)")
    ops = snap_ops(backend, tmp_path)
    excl = [o.index for o in ops if o.op == "write_exclusive"]
    n, after = {
        "first": (0, False),
        "middle": (len(ops) // 2, False),
        "task-commit": (excl[0], False),
        "metadata": (excl[-1], False),
        "last-after": (len(ops) - 1, True),
    }[where]
    _check(figures, crash_trial(backend, tmp_path, n, after))


@pytest.mark.reliability
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_snapshot_crash_points_full(backend, tmp_path, figures, after):
    ops = snap_ops(backend, tmp_path)
    if not after:
        figures.add("crash_points", f"snapshot_ops_{backend.name}", len(ops))
    for n in range(len(ops)):
        _check(figures, crash_trial(backend, tmp_path, n, after))


# ---------------------------------------------------------------------- corruption


def snapshot_fuzz(tmp_path: Path, trials: int, seed: int, encryption: bool, figures) -> None:
    from .conftest import Backend

    rng = random.Random(seed)
    base = str(tmp_path / "snap")
    backend = Backend("local", [base], {"fs.client.type": "local"}, lambda: [])
    store = open_store(backend, encryption=encryption)
    pending = store.begin(JOB, ["t0", "t1"])
    for t, chunks in STATE.items():
        store.write_task_state(pending.task_handle(t), chunks)
    store.complete(JOB, pending.snapshot_id)
    store.close()
    files = sorted(
        p for p in Path(base).rglob("*") if p.is_file() and not p.name.startswith("_lease")
    )
    state_files = [p for p in files if p.name.endswith(".state")]
    assert state_files and any(p.name == "_metadata" for p in files)
    outcomes = Outcomes(figures, "corruption")

    def read() -> object:
        s = snapshot_store().from_properties(
            store_props([base], encryption), key=KEY if encryption else None
        )
        try:
            snap = s.latest(JOB)
            if snap is None:
                raise LookupError("no snapshot")
            return {t: b"".join(s.read_task_state(snap, t)) for t in snap.task_ids}
        finally:
            s.close()

    assert read() == EXPECTED
    for trial in range(trials):
        target = rng.choice(files)
        original = target.read_bytes()
        if rng.random() < 0.15 and len(state_files) > 1 and target in state_files:
            kind = "swap-task"
            damaged = next(p for p in state_files if p != target).read_bytes()
        else:
            kind, damaged = mutate_bytes(original, rng)
        target.write_bytes(damaged)
        try:
            outcomes.judge(f"snapshot trial {trial} {kind} {target.name}", _ignored(read), EXPECTED)
        finally:
            target.write_bytes(original)
        figures.add("corruption", f"snapshot_{_category(target.name)}_{kind}")
    outcomes.check()


def _category(name: str) -> str:
    if name.endswith((".state", ".commit")):
        return name.rsplit(".", 1)[-1]
    return name.strip("_") if name.startswith("_") else "id_marker"


def _ignored(read):
    """A damaged snapshot may be skipped (latest() None) rather than raise: never wrong data."""

    def wrapped():
        try:
            return read()
        except LookupError:
            raise IntegrityError("snapshot skipped as damaged") from None
        except StorageFileNotFoundError:
            raise

    return wrapped


@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_snapshot_corruption(tmp_path, figures, encryption):
    snapshot_fuzz(tmp_path, 100, seed=5 + encryption, encryption=encryption, figures=figures)


@pytest.mark.reliability
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_snapshot_corruption_full(tmp_path, figures, encryption):
    snapshot_fuzz(tmp_path, 2000, seed=50 + encryption, encryption=encryption, figures=figures)
