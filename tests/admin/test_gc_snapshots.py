"""exchange-store gc and ls on the snapshot store: expired pending snapshots go, kept ones stay."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import pytest

from exchange_store.admin.gc import GarbageCollector
from exchange_store.admin.snapshots import snapshot_view_from_etc
from exchange_store.cli.main import main
from exchange_store.snapshots import SnapshotStore, generate_key_file

from .conftest import write_etc


@pytest.fixture
def snap_etc(tmp_path: pathlib.Path) -> dict[str, Any]:
    base = tmp_path / "snapshots"
    key_file = tmp_path / "snapshot.key"
    generate_key_file(key_file)
    props = {
        "snapshot.base-directories": str(base),
        "snapshot.timeout": "10s",
        "snapshot.lease-ttl": "1m",
        "snapshot.retained-count": "2",
        "snapshot.max-concurrent": "3",
        "snapshot.encryption-key-file": str(key_file),
    }
    etc = write_etc(tmp_path, None, {"fs.client.type": "local"}, snapshot=props)
    return {"etc": etc, "base": base, "props": props}


def store_with(props: dict[str, str], **overrides: str) -> SnapshotStore:
    return SnapshotStore.from_properties({**props, **overrides})


def collector(etc: pathlib.Path, clock: Any, **kw: Any) -> tuple[GarbageCollector, Any]:
    view = snapshot_view_from_etc(etc)
    assert view is not None
    return GarbageCollector(None, view, clock=clock, **kw), view


def test_expired_pending_snapshot_collected_only_after_deadline_and_lease(
    snap_etc: dict[str, Any],
) -> None:
    owner = store_with(snap_etc["props"])
    pending = owner.begin("job1", ["t1", "t2"])
    owner.write_task_state(pending.task_handle("t1"), b"state" * 1000)
    path = pending.path
    # Deadline passed, but the coordinator's lease is fresh: untouched.
    gc, view = collector(snap_etc["etc"], lambda: pending.deadline + 1, older_than=0)
    try:
        assert gc.run().items == ()
    finally:
        view.close()
    assert len(owner.pending("job1")) == 1
    # Deadline passed and lease expired (the owner stopped refreshing it long ago).
    late = time.time() + 3600
    gc, view = collector(snap_etc["etc"], lambda: late, older_than=0, dry_run=True)
    try:
        [item] = gc.run().items
        assert item.kind == "pending-snapshot" and not item.deleted and item.size > 0
        assert len(owner.pending("job1")) == 1  # dry run: still there
        gc.dry_run = False
        [item] = gc.run().items
        assert item.deleted and item.name == "job1/checkpoint-1" and item.paths == (path,)
    finally:
        view.close()
    assert owner.pending("job1") == []
    assert not any(f.name.endswith(".state") for f in owner.client.walk(path))
    owner.close()


def test_completed_snapshots_retention_keeps_are_kept(
    snap_etc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Written under retained-count=5, then the etc says 2: a crash-between-complete-and-retention
    # leftover as far as gc can tell.
    writer = store_with(snap_etc["props"], **{"snapshot.retained-count": "5"})
    ids = []
    for i in range(4):
        p = writer.begin("job2", ["t"], savepoint=(i == 0))
        writer.write_task_state(p.task_handle("t"), b"v%d" % i * 100)
        ids.append(p.complete().snapshot_id)
    writer.close()
    assert main(["gc", "--etc", str(snap_etc["etc"]), "--json", "--older-than", "0s"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in report["items"]] == ["job2/checkpoint-2"]
    reader = store_with(snap_etc["props"])
    kept = reader.list_snapshots("job2")
    assert [(s.snapshot_id, s.savepoint) for s in kept] == [(1, True), (3, False), (4, False)]
    assert reader.read_task_state_bytes(kept[-1], "t") == b"v3" * 100
    assert reader.read_task_state_bytes(kept[0], "t") == b"v0" * 100
    # Nothing more to do on a second pass.
    assert main(["gc", "--etc", str(snap_etc["etc"]), "--json", "--older-than", "0s"]) == 0
    assert json.loads(capsys.readouterr().out)["total_items"] == 0
    # ls shows them.
    assert main(["ls", "--etc", str(snap_etc["etc"]), "--json"]) == 0
    [job] = json.loads(capsys.readouterr().out)["jobs"]
    assert [(s["snapshot_id"], s["kind"], s["state"]) for s in job["snapshots"]] == [
        (1, "savepoint", "completed"),
        (3, "checkpoint", "completed"),
        (4, "checkpoint", "completed"),
    ]
    assert main(["ls", "--etc", str(snap_etc["etc"])]) == 0
    assert "savepoint" in capsys.readouterr().out
    reader.close()


def test_gc_refuses_overlapping_base_directories(
    snap_etc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    etc = snap_etc["etc"]
    (etc / "exchange-manager.properties").write_text(
        f"exchange.base-directories={snap_etc['base']}\n"
    )
    assert main(["gc", "--etc", str(etc)]) == 2
    err = capsys.readouterr().err
    assert "overlap" in err and str(snap_etc["base"]) in err


def test_missing_snapshot_key_does_not_block_the_exchange_side(
    snap_etc: dict[str, Any], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    etc = snap_etc["etc"]
    exchange_base = tmp_path / "exchange"
    (etc / "exchange-manager.properties").write_text(f"exchange.base-directories={exchange_base}\n")
    pathlib.Path(snap_etc["props"]["snapshot.encryption-key-file"]).unlink()
    assert main(["gc", "--etc", str(etc), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["failures"][0]["name"] == "snapshots"
    assert "snapshot.key" in captured.err and "keygen" in captured.err
    assert main(["ls", "--etc", str(etc), "--json"]) == 0
    captured = capsys.readouterr()
    assert "snapshot.key" in json.loads(captured.out)["warnings"][0]


SNAPSHOT_OWNER = r"""
import json, sys, time
from exchange_store.snapshots import SnapshotStore
store = SnapshotStore.from_properties(json.loads(sys.argv[1]))
pending = store.begin("job9", ["t1", "t2"])
store.write_task_state(pending.task_handle("t1"), b"s" * 100_000)
print(json.dumps({"path": pending.path, "deadline": pending.deadline}), flush=True)
time.sleep(600)
"""


def test_pending_snapshot_of_a_killed_coordinator(snap_etc: dict[str, Any]) -> None:
    import os
    import signal
    import subprocess
    import sys

    props = {**snap_etc["props"], "snapshot.lease-ttl": "1s"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SNAPSHOT_OWNER, json.dumps(props)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        began = json.loads(proc.stdout.readline())
        # Alive and within its deadline: gc leaves it.
        gc, view = collector(snap_etc["etc"], time.time, older_than=0)
        try:
            assert gc.run().items == ()
        finally:
            view.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    gc, view = collector(snap_etc["etc"], lambda: began["deadline"] + 1, older_than=0)
    try:
        [item] = gc.run().items
    finally:
        view.close()
    assert item.kind == "pending-snapshot" and item.deleted and item.paths == (began["path"],)
    assert item.size >= 100_000 // 300  # compressed state plus the records
    store = store_with(snap_etc["props"])
    assert store.pending("job9") == []
    # The next snapshot of the job works.
    p = store.begin("job9", ["t1"])
    store.write_task_state(p.task_handle("t1"), b"next")
    assert store.read_task_state_bytes(p.complete(), "t1") == b"next"
    store.close()
