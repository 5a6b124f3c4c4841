"""Expiry, abort and retention of snapshots: what keeps a store's storage bounded.

:class:`SnapshotMaintenance` adds to the catalog what removes snapshots: pending ones that
passed their deadline expire (completion and expiry race for one exclusive ``_metadata``),
completed checkpoints beyond retention are deleted, savepoints only on request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from exchange_store.errors import (
    CommitConflictError,
)
from exchange_store.ids import check_id
from exchange_store.snapshots import paths
from exchange_store.snapshots.catalog import SnapshotCatalog, SnapshotEntry
from exchange_store.snapshots.model import (
    Snapshot,
    SnapshotExpiredError,
    TaskFile,
)
from exchange_store.snapshots.records import COMPLETED, EXPIRED, Outcome
from exchange_store.snapshots.retention import RetentionPolicy

__all__ = ["SnapshotMaintenance"]

_log = logging.getLogger(__name__)


class SnapshotMaintenance(SnapshotCatalog):
    """Expiry, abort, retention and deletion over a catalog; see the module docstring."""

    def _finished(self, outcome: Outcome, job_id: str, snapshot_id: int) -> Snapshot:
        if outcome.state == COMPLETED and outcome.snapshot is not None:
            return outcome.snapshot
        raise SnapshotExpiredError(
            f"snapshot {snapshot_id} of job {job_id!r} expired before it was completed"
        )

    def _cleanup_losers(self, directory: str, files: Sequence[TaskFile]) -> None:
        """Delete state files of attempts that did not commit."""
        keep = {f.file for f in files}
        try:
            for info in self._client.list(directory):
                if paths.parse_state_file(info.name) and info.name not in keep:
                    self._client.delete(info.path)
        except Exception as exc:
            _log.warning("could not clean up %s: %s", directory, exc)

    def _expire(
        self, directory: str, job_id: str, snapshot_id: int, savepoint: bool, now: float
    ) -> bool:
        """Claim ``_metadata`` for expiry; on success delete the partial state. True if won."""
        try:
            self._records.write_expired(directory, job_id, snapshot_id, now)
        except CommitConflictError:
            return False  # completion (or another expiry) won
        self._release(directory)
        with contextlib.suppress(CommitConflictError):
            self._client.write_exclusive(paths.expired_path(directory), b"")
        keep = {paths.PENDING_NAME, paths.METADATA_NAME, paths.EXPIRED_NAME}
        for info in self._client.list(directory):
            if info.name not in keep:
                if info.is_dir:
                    self._client.delete_recursive(info.path)
                else:
                    self._client.delete(info.path)
        _log.info("expired snapshot %s of job %s", snapshot_id, job_id)
        return True

    def _expire_job(
        self, job_id: str, now: float, entries: Sequence[SnapshotEntry] | None = None
    ) -> list[tuple[str, int]]:
        expired: list[tuple[str, int]] = []
        for e in self._scan(job_id) if entries is None else entries:
            if e.pending is not None and e.outcome is None and now >= e.pending.deadline:
                if self._expire(e.path, job_id, e.snapshot_id, e.savepoint, now):
                    expired.append((job_id, e.snapshot_id))
            elif (
                e.outcome is not None
                and e.outcome.state == EXPIRED
                and now >= e.outcome.expired_at + self.config.timeout
            ):
                # A tombstone outlives the deadline by one timeout, then goes; late writers
                # then find no begin record and are refused all the same.
                self._client.delete_recursive(e.path)
        return expired

    def abort(self, job_id: str, snapshot_id: int) -> bool:
        """Expire a pending snapshot now, whatever its deadline (its writers are refused).

        For a coordinator that knows the snapshot is abandoned (its writer crashed and the task
        is being retried), so the next one need not wait for ``snapshot.timeout``.

        Returns:
            True if this call expired it; False if it was already completed or expired.

        Raises:
            SnapshotNotFoundError: no such snapshot.
        """
        directory, savepoint = self._find(job_id, snapshot_id)
        return self._expire(directory, job_id, snapshot_id, savepoint, self._clock())

    def abort_pending(self, job_id: str) -> list[int]:
        """Expire every pending snapshot of the job now; returns the ids this call expired."""
        now = self._clock()
        return [
            e.snapshot_id
            for e in self._scan(job_id)
            if e.pending is not None
            and e.outcome is None
            and self._expire(e.path, job_id, e.snapshot_id, e.savepoint, now)
        ]

    def expire_pending(self, now: float | None = None) -> list[tuple[str, int]]:
        """Expire every overdue pending snapshot of every job (begin/complete also do it).

        Returns:
            ``(job_id, snapshot_id)`` of each snapshot this call expired.
        """
        when = self._clock() if now is None else now
        out: list[tuple[str, int]] = []
        for job_id in self.list_jobs():
            out.extend(self._expire_job(job_id, when))
        return out

    def apply_retention(
        self, job_id: str, policy: RetentionPolicy | None = None, *, upto: int | None = None
    ) -> list[Snapshot]:
        """Delete the completed snapshots ``policy`` selects, and old expiry tombstones.

        The default policy keeps the newest ``snapshot.retained-count`` checkpoints; savepoints
        are protected. Tombstones of expired snapshots older than the newest completed snapshot
        go too.

        Args:
            job_id: The job.
            policy: What to delete; see :class:`RetentionPolicy`.
            upto: Only consider snapshots with an id up to this one.

        Returns:
            The snapshots deleted.
        """
        policy = policy or RetentionPolicy().keep_last(self.config.retained_count)
        entries = self._scan(job_id)
        if upto is not None:
            entries = [e for e in entries if e.snapshot_id <= upto]
        completed = [
            e.outcome.snapshot
            for e in entries
            if e.outcome is not None and e.outcome.snapshot is not None
        ]
        doomed = policy.select(completed)
        for snap in doomed:
            self._delete_dir(snap.path)
        if completed:
            newest = completed[-1].snapshot_id
            for e in entries:
                if e.outcome is not None and e.outcome.state == EXPIRED and e.snapshot_id < newest:
                    self._delete_dir(e.path)
        return doomed

    def _delete_dir(self, directory: str) -> None:
        with self._lock:
            self._outcomes.pop(directory, None)
        self._release(directory)
        self._client.delete_recursive(directory)

    def delete_snapshot(self, job_id: str, snapshot_id: int) -> None:
        """Delete one snapshot (checkpoint or savepoint, completed or pending).

        This is the only way a savepoint is ever deleted.

        Raises:
            SnapshotNotFoundError: no such snapshot.
        """
        directory, _ = self._find(job_id, snapshot_id)
        self._delete_dir(directory)

    def drop_job(self, job_id: str) -> None:
        """Delete everything of the job: every snapshot, pending or not, and its id markers."""
        check_id(job_id, "job_id")
        with self._lock:
            mine = [d for d in self._leases if d.split("/")[-2:-1] == [job_id]]
            for d in list(self._outcomes):
                if d.split("/")[-2:-1] == [job_id]:
                    del self._outcomes[d]
        for d in mine:
            self._release(d)
        for base in self.config.base_directories:
            self._client.delete_recursive(paths.job_dir(base, job_id))
