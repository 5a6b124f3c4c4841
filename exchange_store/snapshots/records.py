"""Reading and writing the snapshot store's small records, sealed and bound to their place.

Three records exist per snapshot: ``_pending`` (the begin record), ``{task_id}.commit`` (a
task's commit marker) and ``_metadata`` (the outcome: completed or expired). Each is compact
JSON sealed with :func:`exchange_store.format.seal` under the store's key (encrypted and
authenticated when the store is encrypted, checksummed otherwise), with associated data naming
the job, the snapshot and the record's role; a changed, truncated, swapped or moved record raises
:class:`~exchange_store.errors.IntegrityError` naming its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exchange_store.errors import IntegrityError, StorageFileNotFoundError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.format import seal, unseal
from exchange_store.ids import ID_PATTERN
from exchange_store.snapshots import paths
from exchange_store.snapshots.model import (
    RECORD_VERSION,
    CommitRecord,
    PendingRecord,
    Snapshot,
    TaskFile,
    decode_json,
    encode_json,
)

__all__ = ["COMPLETED", "EXPIRED", "Outcome", "SnapshotRecords"]

OUTCOME_KIND = "outcome"
COMPLETED = "completed"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decoded ``_metadata``: a completed snapshot (with its files) or an expiry.

    Attributes:
        state: ``completed`` or ``expired``.
        snapshot: The snapshot, when completed.
        files: Each task's committed file, when completed.
        expired_at: When it expired, when expired.
    """

    state: str
    snapshot: Snapshot | None = None
    files: tuple[TaskFile, ...] = ()
    expired_at: float = 0.0


class SnapshotRecords:
    """Sealed record I/O for one store (its client and key).

    Args:
        client: The filesystem client.
        key: The store's key, or None without encryption.
    """

    def __init__(self, client: FileSystemClient, key: bytes | None) -> None:
        self._client = client
        self._key = key

    def _seal(self, obj: Mapping[str, Any], context: bytes) -> bytes:
        return seal(encode_json(obj), self._key, context)

    def _unseal(self, data: bytes, context: bytes, path: str, kind: str) -> dict[str, Any]:
        try:
            payload = unseal(data, self._key, context)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc}") from exc
        return decode_json(payload, path, kind)

    def read_optional(self, path: str) -> bytes | None:
        """The bytes at ``path``, or None when nothing is there."""
        try:
            return self._client.read_file(path)
        except StorageFileNotFoundError:
            return None

    # ------------------------------------------------------------------ _pending

    def write_pending(self, directory: str, record: PendingRecord) -> None:
        """Create the begin record (exclusively)."""
        context = paths.context_for(record.job_id, record.snapshot_id, paths.PENDING_NAME)
        self._client.write_exclusive(
            paths.pending_path(directory), self._seal(record.to_json(), context)
        )

    def read_pending(self, directory: str, job_id: str, snapshot_id: int) -> PendingRecord | None:
        """The begin record, or None when there is none."""
        path = paths.pending_path(directory)
        data = self.read_optional(path)
        if data is None:
            return None
        context = paths.context_for(job_id, snapshot_id, paths.PENDING_NAME)
        raw = self._unseal(data, context, path, "pending")
        try:
            record = PendingRecord.from_json(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{path}: malformed pending record ({exc})") from None
        if record.job_id != job_id or record.snapshot_id != snapshot_id:
            raise IntegrityError(f"{path}: record of another snapshot")
        return record

    # ------------------------------------------------------------------ commit markers

    def write_commit(
        self, directory: str, job_id: str, snapshot_id: int, record: CommitRecord
    ) -> str:
        """Create the task's commit marker exclusively; returns its path.

        Raises:
            CommitConflictError: another attempt of the task committed first.
        """
        task_id = record.file.task_id
        marker = paths.commit_marker_path(directory, task_id)
        context = paths.context_for(job_id, snapshot_id, f"{task_id}{paths.COMMIT_SUFFIX}")
        self._client.write_exclusive(marker, self._seal(record.to_json(), context))
        return marker

    def read_commits(
        self, directory: str, job_id: str, snapshot_id: int, *, check_files: bool = False
    ) -> dict[str, CommitRecord]:
        """Every task commit in ``directory`` by task id.

        Args:
            directory: The snapshot directory.
            job_id: Its job.
            snapshot_id: Its id.
            check_files: Also require each committed file to be present with its size.
        """
        out: dict[str, CommitRecord] = {}
        listing = self._client.list(directory)
        sizes = {info.name: info.size for info in listing if not info.is_dir}
        for info in listing:
            if info.is_dir or not info.name.endswith(paths.COMMIT_SUFFIX):
                continue
            task_id = info.name[: -len(paths.COMMIT_SUFFIX)]
            if not ID_PATTERN.fullmatch(task_id):
                continue
            data = self.read_optional(info.path)
            if data is None:
                continue
            context = paths.context_for(job_id, snapshot_id, info.name)
            raw = self._unseal(data, context, info.path, "commit")
            try:
                record = CommitRecord.from_json(raw)
            except (KeyError, TypeError, ValueError) as exc:
                raise IntegrityError(f"{info.path}: malformed commit record ({exc})") from None
            if record.file.task_id != task_id:
                raise IntegrityError(f"{info.path}: commit record of another task")
            if check_files and sizes.get(record.file.file) != record.file.length:
                problem = "missing" if record.file.file not in sizes else "of the wrong size"
                raise IntegrityError(
                    f"{info.path}: the committed state file {record.file.file} is {problem}"
                )
            out[task_id] = record
        return out

    # ------------------------------------------------------------------ _metadata

    def write_completed(self, snapshot: Snapshot, files: Sequence[TaskFile]) -> None:
        """Publish the snapshot: create ``_metadata`` exclusively with state completed.

        Raises:
            CommitConflictError: an outcome (completion or expiry) is already there.
        """
        body = {
            "version": RECORD_VERSION,
            "kind": OUTCOME_KIND,
            "state": COMPLETED,
            "job_id": snapshot.job_id,
            "snapshot_id": snapshot.snapshot_id,
            "savepoint": snapshot.savepoint,
            "task_ids": list(snapshot.task_ids),
            "created_at": snapshot.created_at,
            "completed_at": snapshot.completed_at,
            "size": snapshot.size,
            "files": [f.to_json() for f in files],
        }
        self._write_outcome(snapshot.path, snapshot.job_id, snapshot.snapshot_id, body)

    def write_expired(self, directory: str, job_id: str, snapshot_id: int, now: float) -> None:
        """Expire the snapshot: create ``_metadata`` exclusively with state expired.

        Raises:
            CommitConflictError: an outcome (completion or expiry) is already there.
        """
        body = {
            "version": RECORD_VERSION,
            "kind": OUTCOME_KIND,
            "state": EXPIRED,
            "job_id": job_id,
            "snapshot_id": snapshot_id,
            "expired_at": now,
        }
        self._write_outcome(directory, job_id, snapshot_id, body)

    def _write_outcome(
        self, directory: str, job_id: str, snapshot_id: int, body: Mapping[str, Any]
    ) -> None:
        context = paths.context_for(job_id, snapshot_id, paths.METADATA_NAME)
        self._client.write_exclusive(paths.metadata_path(directory), self._seal(body, context))

    def read_outcome(
        self, directory: str, job_id: str, snapshot_id: int, savepoint: bool
    ) -> Outcome | None:
        """The snapshot's outcome, or None while it is pending (or gone)."""
        path = paths.metadata_path(directory)
        data = self.read_optional(path)
        if data is None:
            return None
        context = paths.context_for(job_id, snapshot_id, paths.METADATA_NAME)
        raw = self._unseal(data, context, path, OUTCOME_KIND)
        try:
            if raw["job_id"] != job_id or int(raw["snapshot_id"]) != snapshot_id:
                raise IntegrityError(f"{path}: record of another snapshot")
            if raw["state"] == EXPIRED:
                return Outcome(EXPIRED, expired_at=float(raw["expired_at"]))
            if raw["state"] != COMPLETED or bool(raw["savepoint"]) != savepoint:
                raise IntegrityError(f"{path}: unexpected outcome {raw['state']!r}")
            files = tuple(TaskFile.from_json(f) for f in raw["files"])
            snap = Snapshot(
                job_id=job_id,
                snapshot_id=snapshot_id,
                savepoint=savepoint,
                task_ids=tuple(str(t) for t in raw["task_ids"]),
                created_at=float(raw["created_at"]),
                completed_at=float(raw["completed_at"]),
                size=int(raw["size"]),
                path=directory,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{path}: malformed snapshot metadata ({exc})") from None
        return Outcome(COMPLETED, snapshot=snap, files=files)
