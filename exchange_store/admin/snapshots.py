"""The snapshot store as ``ls`` and ``gc`` see it.

What ``gc`` collects here:

* a pending snapshot whose deadline passed **and** whose coordinator's lease expired (or is
  gone) is expired through the store (the exclusive ``_metadata`` race decides against a late
  completion, so a snapshot never becomes complete after this), which deletes its partial
  state;
* completed checkpoints beyond ``snapshot.retained-count`` (left when a coordinator crashed
  between completion and retention); savepoints and the snapshots retention keeps are never
  touched;
* a snapshot directory with neither a begin record nor an outcome (a crash right after the id
  was allocated) once nothing in it changed for ``older_than``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exchange_store.admin.inventory import newest_mtime
from exchange_store.admin.report import GcFailure, GcItem, format_age
from exchange_store.errors import IntegrityError, StorageError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.lease import read_lease

if TYPE_CHECKING:
    from exchange_store.snapshots.store import SnapshotStore

__all__ = ["SnapshotView", "snapshot_view_from_etc", "try_snapshot_view"]


class SnapshotView:
    """Read and collect a :class:`~exchange_store.snapshots.store.SnapshotStore`.

    Args:
        store: The store (closed by :meth:`close`).
    """

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    @property
    def client(self) -> FileSystemClient:
        """The store's filesystem client."""
        return self.store.client

    @property
    def roots(self) -> tuple[str, ...]:
        """The store's base directories."""
        return tuple(self.store.config.base_directories)

    @property
    def lease_ttl(self) -> float:
        """``snapshot.lease-ttl``: how long a pending snapshot's owner may be silent."""
        return float(self.store.config.lease_ttl)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # ------------------------------------------------------------------ ls

    def list_jobs(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every job with its snapshots (completed and pending), as JSON-ready dicts."""
        now = time.time() if now is None else now
        out = []
        for job in self.store.list_jobs():
            rows: list[dict[str, Any]] = []
            for s in self.store.list_snapshots(job):
                rows.append(
                    {
                        "snapshot_id": s.snapshot_id,
                        "kind": s.kind,
                        "state": "completed",
                        "size": s.size,
                        "task_ids": list(s.task_ids),
                        "created_at": s.created_at,
                        "completed_at": s.completed_at,
                        "deadline": None,
                        "path": s.path,
                    }
                )
            for p in self.store.pending(job):
                _newest, size, _files = newest_mtime(self.client, [p.path])
                rows.append(
                    {
                        "snapshot_id": p.snapshot_id,
                        "kind": p.kind,
                        "state": "overdue" if p.overdue(now) else "pending",
                        "size": size,
                        "task_ids": list(p.task_ids),
                        "created_at": p.created_at,
                        "completed_at": None,
                        "deadline": p.deadline,
                        "path": p.path,
                    }
                )
            rows.sort(key=lambda r: r["snapshot_id"])
            out.append({"job_id": job, "snapshots": rows})
        return out

    # ------------------------------------------------------------------ gc

    def _lease_alive(self, directory: str, now: float) -> bool:
        from exchange_store.snapshots import paths

        try:
            lease = read_lease(self.client, paths.lease_path(directory))
        except IntegrityError:
            return False  # an unreadable lease protects nothing
        return lease is not None and not lease.expired(now)

    def collect(
        self,
        now: float,
        *,
        dry_run: bool,
        failures: list[GcFailure],
        older_than: float = 3600.0,
        live: set[str] | None = None,
    ) -> Iterator[GcItem]:
        """Yield (and unless ``dry_run``, delete) the garbage of every job.

        Args:
            now: The time decisions are made at.
            dry_run: Delete nothing.
            failures: Where failed items are recorded.
            older_than: Grace period for directories without records (at least one lease
                TTL is applied whatever is given: a snapshot being begun has no record yet).
            live: Filled with the directories of pending snapshots whose lease is fresh.
        """
        for job in self.store.list_jobs():
            try:
                yield from self._collect_pending(job, now, dry_run, live)
                yield from self._collect_retention(job, now, dry_run)
                grace = max(older_than, self.lease_ttl)
                yield from self._collect_orphans(job, now, dry_run, grace)
            except (StorageError, IntegrityError) as exc:
                failures.append(GcFailure(f"job {job}", str(exc)))

    def _collect_pending(
        self, job: str, now: float, dry_run: bool, live: set[str] | None
    ) -> Iterator[GcItem]:
        for p in self.store.pending(job):
            alive = self._lease_alive(p.path, now)
            if alive and live is not None:
                live.add(p.path)
            if not p.overdue(now) or alive:
                continue
            _newest, size, _files = newest_mtime(self.client, [p.path])
            if not dry_run:
                # Right before expiring: the lease again, then the store's exclusive claim.
                if self._lease_alive(p.path, now):
                    continue
                if not self.store.abort(job, p.snapshot_id):
                    continue  # completed (or expired by someone else) meanwhile
            yield GcItem(
                "pending-snapshot",
                f"{job}/{p.kind}-{p.snapshot_id}",
                (p.path,),
                size,
                now - p.deadline,
                f"deadline passed {format_age(now - p.deadline)} ago, no live lease "
                f"(began by {p.owner or 'unknown'})",
                not dry_run,
            )

    def _collect_retention(self, job: str, now: float, dry_run: bool) -> Iterator[GcItem]:
        from exchange_store.snapshots.retention import RetentionPolicy

        keep = self.store.config.retained_count
        completed = self.store.list_snapshots(job)
        for snap in RetentionPolicy().keep_last(keep).select(completed):
            if snap.savepoint:  # never automatically
                continue
            if not dry_run:
                self.store.delete_snapshot(job, snap.snapshot_id)
            yield GcItem(
                "checkpoint",
                f"{job}/{snap.kind}-{snap.snapshot_id}",
                (snap.path,),
                snap.size,
                now - snap.completed_at,
                f"beyond snapshot.retained-count={keep}",
                not dry_run,
            )

    def _collect_orphans(
        self, job: str, now: float, dry_run: bool, older_than: float
    ) -> Iterator[GcItem]:
        from exchange_store.snapshots import paths

        for entry in self.client.list(self.store.job_path(job)):
            parsed = paths.parse_snapshot_dir(entry.name) if entry.is_dir else None
            if parsed is None:
                continue
            names = {f.name for f in self.client.list(entry.path)}
            if names & {paths.PENDING_NAME, paths.METADATA_NAME}:
                continue
            newest, size, _files = newest_mtime(self.client, [entry.path])
            idle = None if newest is None else now - newest
            if idle is not None and idle < older_than:
                continue
            if not dry_run:
                self.client.delete_recursive(entry.path)
            yield GcItem(
                "snapshot-dir",
                f"{job}/{entry.name}",
                (entry.path,),
                size,
                idle,
                "no begin record and no outcome",
                not dry_run,
            )


def snapshot_view_from_etc(etc_dir: str | os.PathLike[str]) -> SnapshotView | None:
    """The snapshot store ``etc_dir`` configures; None without ``snapshot-store.properties``.

    Raises:
        ConfigurationError: the file or its key file is wrong (the message names it).
    """
    if not os.path.isfile(os.path.join(etc_dir, "snapshot-store.properties")):
        return None
    from exchange_store.snapshots.store import SnapshotStore

    return SnapshotView(SnapshotStore.from_etc(etc_dir))


def try_snapshot_view(
    etc_dir: str | os.PathLike[str],
) -> tuple[SnapshotView | None, str | None]:
    """Like :func:`snapshot_view_from_etc`, but a configuration problem comes back as a message.

    A missing key file, say, then does not stop the exchange side of ``ls``/``gc``.
    """
    from exchange_store.errors import ConfigurationError

    try:
        return snapshot_view_from_etc(etc_dir), None
    except ConfigurationError as exc:
        return None, f"snapshot store skipped: {exc}"
