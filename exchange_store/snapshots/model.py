"""The snapshot store's value objects, errors and the JSON records it stores.

Every record (``_pending``, ``{task}.commit``, ``_metadata``) is JSON sealed with
:func:`exchange_store.format.seal` under the store's key and a context naming the job, the
snapshot and the record's role, so a changed, truncated or moved record raises
:class:`~exchange_store.errors.IntegrityError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from exchange_store.errors import (
    IntegrityError,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    TooManyPendingSnapshotsError,
)

__all__ = [
    "RECORD_VERSION",
    "CommitRecord",
    "PendingRecord",
    "PendingSnapshot",
    "Snapshot",
    "SnapshotExpiredError",
    "SnapshotIncompleteError",
    "SnapshotNotFoundError",
    "SnapshotStateError",
    "SnapshotTaskHandle",
    "TaskFile",
    "TooManyPendingSnapshotsError",
]

RECORD_VERSION = 1


class SnapshotOwner(Protocol):
    """What a :class:`PendingSnapshot` asks of the store that began it."""

    def _task_handle(self, pending: PendingSnapshot, task_id: str) -> SnapshotTaskHandle: ...

    def _committed(self, pending: PendingSnapshot) -> tuple[str, ...]: ...

    def complete(self, job_id: str, snapshot_id: int) -> Snapshot: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A completed snapshot: immutable once published.

    Attributes:
        job_id: The job it belongs to.
        snapshot_id: Its id (increasing per job: 1, 2, ...).
        savepoint: A savepoint (kept until deleted explicitly) rather than a checkpoint.
        task_ids: The tasks whose state it holds, in the order given to begin().
        created_at: When begin() ran (epoch seconds).
        completed_at: When complete() published it.
        size: Bytes stored for the task state (all tasks).
        path: Its directory.
    """

    job_id: str
    snapshot_id: int
    savepoint: bool
    task_ids: tuple[str, ...]
    created_at: float
    completed_at: float
    size: int
    path: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        """``savepoint`` or ``checkpoint``."""
        return "savepoint" if self.savepoint else "checkpoint"


@dataclass(frozen=True, slots=True)
class SnapshotTaskHandle:
    """What a worker needs to write one task's state: small and picklable.

    The key is never shown by ``repr``/``str`` and never written to storage.

    Attributes:
        job_id: The job.
        snapshot_id: The snapshot.
        task_id: The task whose state this handle writes.
        savepoint: Kind of the snapshot.
        deadline: When the snapshot expires (epoch seconds); writers refuse after it.
        directory: The snapshot's directory.
        codec: Compression codec name used for the state.
        block_size: Target raw block size.
        key: The store's key, or None without encryption.
    """

    job_id: str
    snapshot_id: int
    task_id: str
    savepoint: bool
    deadline: float
    directory: str
    codec: str = "LZ4"
    block_size: int = 1 << 20
    key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TaskFile:
    """One task's committed state file.

    Attributes:
        task_id: The task.
        file: File name inside the snapshot directory.
        length: Bytes on storage.
        codec: Codec the file was written with.
    """

    task_id: str
    file: str
    length: int
    codec: str

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "task_id": self.task_id,
            "file": self.file,
            "length": self.length,
            "codec": self.codec,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TaskFile:
        """From a JSON object (KeyError/TypeError/ValueError when malformed)."""
        return cls(str(raw["task_id"]), str(raw["file"]), int(raw["length"]), str(raw["codec"]))


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """The begin record stored in ``_pending``.

    Attributes:
        job_id: The job.
        snapshot_id: The snapshot.
        savepoint: Kind.
        task_ids: The tasks that must commit.
        created_at: When begin() ran.
        deadline: When it expires unless completed.
        owner: Who began it (host:pid), for humans.
    """

    job_id: str
    snapshot_id: int
    savepoint: bool
    task_ids: tuple[str, ...]
    created_at: float
    deadline: float
    owner: str = ""

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "version": RECORD_VERSION,
            "kind": "pending",
            "job_id": self.job_id,
            "snapshot_id": self.snapshot_id,
            "savepoint": self.savepoint,
            "task_ids": list(self.task_ids),
            "created_at": self.created_at,
            "deadline": self.deadline,
            "owner": self.owner,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PendingRecord:
        """From a JSON object."""
        return cls(
            str(raw["job_id"]),
            int(raw["snapshot_id"]),
            bool(raw["savepoint"]),
            tuple(str(t) for t in raw["task_ids"]),
            float(raw["created_at"]),
            float(raw["deadline"]),
            str(raw.get("owner", "")),
        )


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """A task commit marker's content.

    Attributes:
        file: The committed state file.
        committed_at: When the task committed.
    """

    file: TaskFile
    committed_at: float

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "version": RECORD_VERSION,
            "kind": "commit",
            "file": self.file.to_json(),
            "committed_at": self.committed_at,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CommitRecord:
        """From a JSON object."""
        return cls(TaskFile.from_json(raw["file"]), float(raw["committed_at"]))


def encode_json(obj: Mapping[str, Any]) -> bytes:
    """Compact, sorted JSON bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def decode_json(data: bytes, path: str, kind: str) -> dict[str, Any]:
    """Parse a record and check its version and kind.

    Raises:
        IntegrityError: not a JSON object of this kind and a known version; names ``path``.
    """
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{path}: not a snapshot record ({exc})") from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{path}: not a snapshot record")
    if raw.get("version") != RECORD_VERSION:
        raise IntegrityError(
            f"{path}: unknown snapshot record version {raw.get('version')!r} "
            f"(this reader knows {RECORD_VERSION})"
        )
    if raw.get("kind") != kind:
        raise IntegrityError(f"{path}: expected a {kind} record, found {raw.get('kind')!r}")
    return raw


class PendingSnapshot:
    """A snapshot between begin() and complete() (or expiry).

    Obtained from :meth:`SnapshotStore.begin` (then it holds the lease) or
    :meth:`SnapshotStore.pending` (a view for admin tools).

    Attributes:
        job_id: The job.
        snapshot_id: The snapshot id.
        task_ids: The tasks that must commit.
        deadline: When it expires unless completed (epoch seconds).
        savepoint: Kind.
        created_at: When begin() ran.
        owner: Who began it.
        path: Its directory.
    """

    __slots__ = (
        "_store",
        "created_at",
        "deadline",
        "job_id",
        "owner",
        "path",
        "savepoint",
        "snapshot_id",
        "task_ids",
    )

    def __init__(self, store: SnapshotOwner, record: PendingRecord, path: str) -> None:
        self._store = store
        self.job_id = record.job_id
        self.snapshot_id = record.snapshot_id
        self.task_ids = record.task_ids
        self.deadline = record.deadline
        self.savepoint = record.savepoint
        self.created_at = record.created_at
        self.owner = record.owner
        self.path = path

    @property
    def kind(self) -> str:
        """``savepoint`` or ``checkpoint``."""
        return "savepoint" if self.savepoint else "checkpoint"

    def overdue(self, now: float) -> bool:
        """Whether the deadline has passed at ``now``."""
        return now >= self.deadline

    def task_handle(self, task_id: str) -> SnapshotTaskHandle:
        """The picklable handle a worker uses to write ``task_id``'s state.

        Raises:
            InvalidArgumentError: ``task_id`` is not one of this snapshot's tasks.
        """
        return self._store._task_handle(self, task_id)

    def committed_tasks(self) -> tuple[str, ...]:
        """The tasks whose state has committed so far."""
        return self._store._committed(self)

    def complete(self) -> Snapshot:
        """Publish the snapshot; see :meth:`SnapshotStore.complete`."""
        return self._store.complete(self.job_id, self.snapshot_id)

    def __repr__(self) -> str:
        left = self.deadline
        return (
            f"PendingSnapshot(job_id={self.job_id!r}, snapshot_id={self.snapshot_id}, "
            f"kind={self.kind}, tasks={len(self.task_ids)}, deadline={left:.3f})"
        )
