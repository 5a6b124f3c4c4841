"""Task state saved through the snapshot store, across attempts that die mid-save."""

from __future__ import annotations

import os
from pathlib import Path

from exchange_store.scheduler.worker import SnapshotTaskState
from exchange_store.snapshots import SnapshotStore


def test_save_after_an_attempt_died_mid_save(tmp_path: Path) -> None:
    store = SnapshotStore.from_properties(
        {"snapshot.base-directories": str(tmp_path)}, key=os.urandom(32)
    )
    state = SnapshotTaskState(store, "q1-q0-stage1-3")
    state.save(b"step-1")
    # An earlier attempt began a save and was killed before completing it.
    dead = store.begin("q1-q0-stage1-3", ["state"])
    state.save(b"step-2")  # does not wait for snapshot.timeout
    assert state.restore() == b"step-2"
    assert store.pending("q1-q0-stage1-3") == []
    assert dead.snapshot_id < store.latest("q1-q0-stage1-3").snapshot_id
    store.close()
