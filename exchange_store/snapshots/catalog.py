"""The read side of the snapshot store: paths, records, listing, restore, reading state.

:class:`SnapshotCatalog` holds what a store knows (configuration, client, key, the cache of
completed outcomes, the leases of snapshots it began) and answers queries from storage alone,
so a restarted coordinator sees exactly what its predecessor completed. The write side
(:mod:`exchange_store.snapshots.maintenance`, :mod:`exchange_store.snapshots.store`) builds on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from exchange_store.codecs.registry import get_codec
from exchange_store.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    StorageFileNotFoundError,
)
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.filesystems.lease import Lease
from exchange_store.format import (
    FormatOptions,
    read_partition,
    read_summary,
)
from exchange_store.ids import ID_PATTERN, check_id
from exchange_store.snapshots import paths
from exchange_store.snapshots.config import SnapshotStoreConfig
from exchange_store.snapshots.keys import KEY_SIZE, no_key_message
from exchange_store.snapshots.model import (
    PendingRecord,
    Snapshot,
    SnapshotNotFoundError,
)
from exchange_store.snapshots.records import COMPLETED, Outcome, SnapshotRecords

__all__ = ["SnapshotCatalog", "SnapshotEntry"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One snapshot directory as found in storage."""

    snapshot_id: int
    savepoint: bool
    path: str
    outcome: Outcome | None
    pending: PendingRecord | None


class SnapshotCatalog:
    """What a snapshot store knows, and its queries; see the module docstring.

    Thread-safe. Several processes (a coordinator and its workers, or a restarted coordinator)
    may use stores built from the same configuration over the same storage at once.

    Args:
        config: The typed configuration.
        client: The filesystem client, confined to the base directories.
        key: The 32-byte key when encryption is enabled (None otherwise).
        clock: Time source for deadlines and expiry (tests inject one).
        owns_client: Close ``client`` in :meth:`close`.
    """

    def __init__(
        self,
        config: SnapshotStoreConfig,
        client: FileSystemClient,
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
        owns_client: bool = True,
    ) -> None:
        if config.encryption_enabled and key is None:
            raise ConfigurationError(no_key_message(config))
        if key is not None and (not isinstance(key, bytes) or len(key) != KEY_SIZE):
            raise InvalidArgumentError(f"the snapshot key must be {KEY_SIZE} bytes")
        self.config = config
        self._client = client
        self._key = key if config.encryption_enabled else None
        self._clock = clock
        self._owns_client = owns_client
        self._lock = threading.RLock()
        self._leases: dict[str, Lease] = {}
        self._outcomes: dict[str, Outcome] = {}  # completed snapshots are immutable: cache
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._records = SnapshotRecords(client, self._key)
        get_codec(config.codec)  # fail now on a codec that is not installed

    @property
    def client(self) -> FileSystemClient:
        """The filesystem client."""
        return self._client

    @property
    def encrypted(self) -> bool:
        """Whether state and records are encrypted."""
        return self._key is not None

    def job_path(self, job_id: str) -> str:
        """The directory of ``job_id``."""
        check_id(job_id, "job_id")
        return paths.job_dir(paths.choose_base(self.config.base_directories, job_id), job_id)

    def _base(self, job_id: str) -> str:
        return paths.choose_base(self.config.base_directories, check_id(job_id, "job_id"))

    def _read_outcome(
        self, directory: str, job_id: str, snapshot_id: int, savepoint: bool
    ) -> Outcome | None:
        cached = self._outcomes.get(directory)
        if cached is not None:
            return cached
        outcome = self._records.read_outcome(directory, job_id, snapshot_id, savepoint)
        if outcome is not None and outcome.state == COMPLETED:
            with self._lock:  # completed snapshots are immutable: cache them
                self._outcomes[directory] = outcome
        return outcome

    def _scan(self, job_id: str) -> list[SnapshotEntry]:
        """Every snapshot directory of the job, oldest first, with what it holds."""
        entries: list[SnapshotEntry] = []
        for info in self._client.list(self.job_path(job_id)):
            parsed = paths.parse_snapshot_dir(info.name)
            if parsed is None or not info.is_dir:
                continue
            directory = info.path
            outcome = self._read_outcome(directory, job_id, parsed.snapshot_id, parsed.savepoint)
            pending = None
            if outcome is None:
                pending = self._records.read_pending(directory, job_id, parsed.snapshot_id)
            if (outcome is not None or pending is None) and directory in self._leases:
                self._release(directory)  # expired or deleted by another process
            entries.append(
                SnapshotEntry(parsed.snapshot_id, parsed.savepoint, directory, outcome, pending)
            )
        entries.sort(key=lambda e: e.snapshot_id)
        return entries

    def _find(self, job_id: str, snapshot_id: int) -> tuple[str, bool]:
        """The directory and kind of a snapshot; SnapshotNotFoundError when absent."""
        check_id(job_id, "job_id")
        base = self._base(job_id)
        for savepoint in (False, True):
            directory = paths.snapshot_dir(base, job_id, snapshot_id, savepoint)
            if self._client.exists(directory):
                return directory, savepoint
        raise SnapshotNotFoundError(f"no snapshot {snapshot_id} of job {job_id!r} under {base}")

    def _options(self, codec: str, block_size: int, key: bytes | None) -> FormatOptions:
        return FormatOptions(
            codec=get_codec(codec),
            block_size=block_size,
            key=key,
            workers=self.config.writer_threads,
        )

    def _release(self, directory: str) -> None:
        """Stop the pending snapshot's lease (ours) and remove the lease file (anyone's)."""
        with self._lock:
            lease = self._leases.pop(directory, None)
        try:
            if lease is not None:
                lease.close()
            else:
                self._client.delete(paths.lease_path(directory))
        except Exception as exc:
            _log.warning("could not remove the lease of %s: %s", directory, exc)

    def list_jobs(self) -> list[str]:
        """Ids of every job with anything stored, sorted."""
        jobs: set[str] = set()
        for base in self.config.base_directories:
            for info in self._client.list(base):
                if info.is_dir and ID_PATTERN.fullmatch(info.name):
                    jobs.add(info.name)
        return sorted(jobs)

    def list_snapshots(self, job_id: str) -> list[Snapshot]:
        """The job's completed snapshots (checkpoints and savepoints), oldest first.

        Raises:
            IntegrityError: a snapshot's metadata was changed.
        """
        return [
            e.outcome.snapshot
            for e in self._scan(job_id)
            if e.outcome is not None and e.outcome.snapshot is not None
        ]

    def latest(self, job_id: str) -> Snapshot | None:
        """The newest completed snapshot of the job (checkpoint or savepoint), or None."""
        snaps = self.list_snapshots(job_id)
        return snaps[-1] if snaps else None

    def restore(self, job_id: str) -> Snapshot | None:
        """The restore entry point: the newest completed snapshot (checkpoint or savepoint).

        Read each task's state back with :meth:`read_task_state`. Works from storage alone,
        so a restarted coordinator finds exactly what the old one completed.
        """
        return self.latest(job_id)

    def get_snapshot(self, job_id: str, snapshot_id: int) -> Snapshot:
        """One completed snapshot.

        Raises:
            SnapshotNotFoundError: absent, pending or expired.
        """
        directory, savepoint = self._find(job_id, snapshot_id)
        outcome = self._read_outcome(directory, job_id, snapshot_id, savepoint)
        if outcome is None or outcome.snapshot is None:
            raise SnapshotNotFoundError(
                f"snapshot {snapshot_id} of job {job_id!r} is not completed ({directory})"
            )
        return outcome.snapshot

    def read_task_state(self, snapshot: Snapshot, task_id: str) -> Iterator[bytes]:
        """The state of ``task_id`` in a completed snapshot, in chunks.

        The chunks' concatenation is exactly what was written. Memory stays bounded whatever
        the size.

        Raises:
            SnapshotNotFoundError: the snapshot or the task is not in it.
            IntegrityError: a stored byte was changed or truncated, or the key is wrong
                (raised while iterating; no wrong byte is ever returned).
        """
        check_id(task_id, "task_id")
        directory = snapshot.path or paths.snapshot_dir(
            self._base(snapshot.job_id),
            snapshot.job_id,
            snapshot.snapshot_id,
            snapshot.savepoint,
        )
        outcome = self._read_outcome(
            directory, snapshot.job_id, snapshot.snapshot_id, snapshot.savepoint
        )
        if outcome is None or outcome.state != COMPLETED:
            raise SnapshotNotFoundError(
                f"snapshot {snapshot.snapshot_id} of job {snapshot.job_id!r} is not completed "
                f"({directory})"
            )
        match = next((f for f in outcome.files if f.task_id == task_id), None)
        if match is None:
            raise SnapshotNotFoundError(
                f"task {task_id!r} is not in snapshot {snapshot.snapshot_id} of job "
                f"{snapshot.job_id!r}"
            )
        path = join(directory, match.file)
        options = self._options(match.codec, self.config.block_size, self._key)
        context = paths.context_for(snapshot.job_id, snapshot.snapshot_id, task_id)
        return self._checked_stream(path, options, context, match.length)

    def _checked_stream(
        self, path: str, options: FormatOptions, context: bytes, length: int
    ) -> Iterator[bytes]:
        try:
            size = self._client.size(path)
        except StorageFileNotFoundError:
            raise IntegrityError(f"{path}: committed task state is missing") from None
        if size != length:
            raise IntegrityError(
                f"{path}: committed task state is {size} bytes, its commit says {length}"
            )
        # The reader keeps memory bounded itself: it decodes one block at a time, or a few
        # groups of at most max_coalesce raw bytes when it decodes ahead on threads.
        summary = read_summary(self._client, path, options, context)
        for ref in summary.blocks:
            if ref.partition != 0:
                raise IntegrityError(
                    f"{path}: state file holds a block of partition {ref.partition}"
                )
        yield from read_partition(
            self._client, path, summary.file_id, summary.blocks, options, context
        )

    def read_task_state_bytes(self, snapshot: Snapshot, task_id: str) -> bytes:
        """The whole state of ``task_id`` as one bytes object (small states only)."""
        return b"".join(self.read_task_state(snapshot, task_id))

    def close(self) -> None:
        """Stop every lease this store holds and release the client. Idempotent.

        Pending snapshots begun by this store stay pending until they expire.
        """
        with self._lock:
            leases = list(self._leases.values())
            self._leases.clear()
        for lease in leases:
            with contextlib.suppress(Exception):
                lease.close()
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return (
            f"SnapshotStore(base_directories={list(self.config.base_directories)!r}, "
            f"encrypted={self.encrypted})"
        )
