"""Pure parts: path layout and the retention builder."""

from __future__ import annotations

import pytest

from exchange_store.errors import InvalidArgumentError
from exchange_store.snapshots import RetentionPolicy, Snapshot, paths


def test_layout_round_trips() -> None:
    d = paths.snapshot_dir("s3://b/root", "job-1", 7, savepoint=False)
    assert d == "s3://b/root/job-1/chk-0000000007"
    assert paths.snapshot_dir("/x", "j", 12, savepoint=True) == "/x/j/sp-0000000012"
    assert paths.parse_snapshot_dir("chk-0000000007") == paths.SnapshotDirName(7, False)
    assert paths.parse_snapshot_dir("sp-0000000012") == paths.SnapshotDirName(12, True)
    for bad in ("chk-7", "_ids", "sp-00000000xx", "chk-0000000007x"):
        assert paths.parse_snapshot_dir(bad) is None
    assert paths.id_marker_path("/x", "j", 3) == "/x/j/_ids/0000000003"
    assert paths.parse_id_marker("0000000003") == 3 and paths.parse_id_marker("3") is None
    name = paths.state_file_name("task_1", "abc123")
    assert name == "task_1.abc123.state"
    assert paths.parse_state_file(name) == ("task_1", "abc123")
    assert paths.commit_marker_path(d, "t") == d + "/t.commit"
    assert paths.metadata_path(d).endswith("/_metadata")
    assert paths.pending_path(d).endswith("/_pending")
    assert paths.lease_path(d).endswith("/_lease")
    assert paths.context_for("j", 1, "t") != paths.context_for("j", 1, "u")


def test_layout_rejects_bad_ids() -> None:
    with pytest.raises(InvalidArgumentError, match="job_id"):
        paths.job_dir("/x", "../etc")
    with pytest.raises(InvalidArgumentError, match="task_id"):
        paths.state_file_name("a/b", "1")


def test_choose_base_is_stable_and_spreads() -> None:
    bases = ["/a", "/b", "/c"]
    chosen = {paths.choose_base(bases, f"job-{i}") for i in range(50)}
    assert chosen == set(bases)
    assert paths.choose_base(bases, "job-1") == paths.choose_base(list(bases), "job-1")


def _snap(i: int, savepoint: bool = False, t: float = 0.0) -> Snapshot:
    return Snapshot("j", i, savepoint, ("t",), t, t or float(i), 1)


def test_retention_policy() -> None:
    snaps = [_snap(1), _snap(2, savepoint=True), _snap(3), _snap(4), _snap(5)]
    ids = lambda sel: [s.snapshot_id for s in sel]  # noqa: E731
    assert ids(RetentionPolicy().select(snaps)) == []
    assert ids(RetentionPolicy().keep_last(2).select(snaps)) == [1, 3]
    assert ids(RetentionPolicy().older_than(3.5).select(snaps)) == [1, 3]
    assert ids(RetentionPolicy().older_than(3.5).keep_last(3).select(snaps)) == [1]
    assert ids(RetentionPolicy().by_id(2).select(snaps)) == [2]
    assert ids(RetentionPolicy().keep_last(1).including_savepoints().select(snaps)) == [1, 2, 3, 4]
    # The newest snapshot never goes by a rule.
    assert ids(RetentionPolicy().older_than(100).select(snaps)) == [1, 3, 4]
    with pytest.raises(InvalidArgumentError):
        RetentionPolicy().keep_last(0)
    base = RetentionPolicy()
    base.keep_last(3)
    assert base.retain_last is None  # immutable: each step returns a new policy
