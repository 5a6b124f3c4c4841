"""The snapshot store: task-state snapshots on a shared filesystem, like Flink's checkpoints.

A coordinator calls :meth:`SnapshotStore.begin` for a job's tasks, hands each worker a picklable
:class:`~exchange_store.snapshots.model.SnapshotTaskHandle`, every worker streams its task's
state through :meth:`SnapshotStore.open_task_writer` (which commits it with an exclusive
per-task marker), and the coordinator publishes the snapshot with :meth:`SnapshotStore.complete`.
A restarted coordinator (a new store over the same storage) finds the newest completed snapshot
with :meth:`SnapshotStore.restore` and reads each task's state back.

Everything is derived from storage, nothing from memory: ids are allocated with exclusive
markers, completion and expiry race for one exclusive ``_metadata`` file (the first wins), and
a completed snapshot never changes. See :mod:`exchange_store.snapshots.paths` for the layout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from exchange_store.codecs.registry import get_codec
from exchange_store.config import load_etc
from exchange_store.errors import (
    CommitConflictError,
    CommitStateUnknownError,
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    StorageFileNotFoundError,
)
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.filesystems.lease import Lease
from exchange_store.format import (
    FormatOptions,
    RecordStreamWriter,
    read_partition,
    read_summary,
)
from exchange_store.ids import ID_PATTERN, check_id
from exchange_store.snapshots import paths
from exchange_store.snapshots.config import SnapshotStoreConfig, build_client
from exchange_store.snapshots.keys import KEY_SIZE, no_key_message, resolve_key
from exchange_store.snapshots.model import (
    CommitRecord,
    PendingRecord,
    PendingSnapshot,
    Snapshot,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    SnapshotTaskHandle,
    TaskFile,
    TooManyPendingSnapshotsError,
    encode_json,
)
from exchange_store.snapshots.records import COMPLETED, EXPIRED, Outcome, SnapshotRecords
from exchange_store.snapshots.retention import RetentionPolicy
from exchange_store.snapshots.writer import SnapshotTaskWriter

__all__ = ["SnapshotStore", "SnapshotTaskWriter"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One snapshot directory as found in storage."""

    snapshot_id: int
    savepoint: bool
    path: str
    outcome: Outcome | None
    pending: PendingRecord | None


class SnapshotStore:
    """Task-state snapshots of jobs, on any filesystem client.

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

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_properties(
        cls,
        properties: Mapping[str, str],
        *,
        filesystems: Mapping[str, Mapping[str, str]] | None = None,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
        client: FileSystemClient | None = None,
        source: str = "<properties>",
        lines: Mapping[str, int] | None = None,
        origins: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SnapshotStore:
        """Build a store from ``snapshot-store.properties`` values.

        Args:
            properties: The raw keys.
            filesystems: Client files by NAME (``etc/filesystem/NAME.properties`` contents);
                ``snapshot-filesystem-type`` picks one.
            key: The encryption key (wins over the environment and the key file).
            clock: Time source.
            client: A ready client to use instead of building one (tests, fault injection).
            source: Where the properties came from, for messages.
            lines: Key to line number, for messages.
            origins: Key to where it was set when not in the file.
            environ: Environment for ``EXCHANGE_STORE_SNAPSHOT_KEY`` (default ``os.environ``).

        Raises:
            ConfigurationError: a bad key or value, a missing client file or key.
        """
        config = SnapshotStoreConfig.from_properties(properties, source, lines, origins)
        owns = client is None
        if client is None:
            client = build_client(config, filesystems or {}, {})
        try:
            resolved = resolve_key(config, key, environ)
            return cls(config, client, key=resolved, clock=clock, owns_client=owns)
        except BaseException:
            if owns:
                client.close()
            raise

    @classmethod
    def from_etc(
        cls,
        etc_dir: str | os.PathLike[str] = "etc",
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> SnapshotStore:
        """Build a store from ``etc/snapshot-store.properties`` and the client it names.

        Raises:
            ConfigurationError: the file is missing or wrong (names it), or the client file.
        """
        etc = load_etc(etc_dir, environ)
        pf = etc.snapshot_store
        if pf is None:
            raise ConfigurationError(
                f"{etc.root / 'snapshot-store.properties'}: snapshot store configuration not found"
            )
        config = SnapshotStoreConfig.from_properties(pf.values, pf.path, pf.lines, pf.origins)
        fs, sources = etc.client_files(
            config.filesystem_name,
            explicit=config.filesystem_name is not None,
            wanted_by=pf,
            key="snapshot-filesystem-type",
        )
        client = build_client(config, fs, sources)
        try:
            resolved = resolve_key(config, key, environ)
            return cls(config, client, key=resolved, clock=clock, owns_client=True)
        except BaseException:
            client.close()
            raise

    @property
    def client(self) -> FileSystemClient:
        """The filesystem client."""
        return self._client

    @property
    def encrypted(self) -> bool:
        """Whether state and records are encrypted."""
        return self._key is not None

    # ------------------------------------------------------------------ paths

    def job_path(self, job_id: str) -> str:
        """The directory of ``job_id``."""
        check_id(job_id, "job_id")
        return paths.job_dir(paths.choose_base(self.config.base_directories, job_id), job_id)

    def _base(self, job_id: str) -> str:
        return paths.choose_base(self.config.base_directories, check_id(job_id, "job_id"))

    # ------------------------------------------------------------------ records

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

    def _scan(self, job_id: str) -> list[_Entry]:
        """Every snapshot directory of the job, oldest first, with what it holds."""
        entries: list[_Entry] = []
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
                _Entry(parsed.snapshot_id, parsed.savepoint, directory, outcome, pending)
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

    # ------------------------------------------------------------------ begin

    def begin(
        self, job_id: str, task_ids: Sequence[str], *, savepoint: bool = False
    ) -> PendingSnapshot:
        """Start a snapshot of ``task_ids``; the next id of the job is taken from storage.

        Overdue pending snapshots of the job are expired first. The snapshot keeps a lease
        fresh at its directory until it is completed or expires.

        Raises:
            InvalidArgumentError: a bad id, no tasks or a task listed twice.
            TooManyPendingSnapshotsError: ``snapshot.max-concurrent`` unexpired pending
                snapshots exist for the job.
        """
        check_id(job_id, "job_id")
        tasks = tuple(task_ids) if not isinstance(task_ids, str) else (task_ids,)
        if not tasks:
            raise InvalidArgumentError(f"begin({job_id!r}): a snapshot needs at least one task")
        for t in tasks:
            check_id(t, "task_id")
        if len(set(tasks)) != len(tasks):
            dup = sorted({t for t in tasks if tasks.count(t) > 1})
            raise InvalidArgumentError(f"begin({job_id!r}): task ids listed twice: {dup}")
        with self._lock:
            now = self._clock()
            entries = self._scan(job_id)
            self._expire_job(job_id, now, entries)
            live = [
                e.pending
                for e in entries
                if e.pending is not None and e.outcome is None and now < e.pending.deadline
            ]
            if len(live) >= self.config.max_concurrent:
                ids = ", ".join(str(p.snapshot_id) for p in live if p is not None)
                raise TooManyPendingSnapshotsError(
                    f"job {job_id!r} already has {len(live)} pending snapshot(s) ({ids}); "
                    f"snapshot.max-concurrent={self.config.max_concurrent}"
                )
            base = self._base(job_id)
            snapshot_id = self._allocate_id(base, job_id, savepoint, now)
            directory = paths.snapshot_dir(base, job_id, snapshot_id, savepoint)
            record = PendingRecord(
                job_id, snapshot_id, savepoint, tasks, now, now + self.config.timeout, self._owner
            )
            self._records.write_pending(directory, record)
            lease = Lease(
                self._client,
                [paths.lease_path(directory)],
                f"snapshot {job_id}/{snapshot_id}",
                self.config.lease_ttl,
            )
            try:
                lease.start()
            except BaseException:
                lease.close()
                raise
            self._leases[directory] = lease
            return PendingSnapshot(self, record, directory)

    def _allocate_id(self, base: str, job_id: str, savepoint: bool, now: float) -> int:
        """Claim the next snapshot id with an exclusive marker (markers are never reused)."""
        existing = [
            n
            for info in self._client.list(paths.ids_dir(base, job_id))
            if (n := paths.parse_id_marker(info.name)) is not None
        ]
        candidate = max(existing, default=0) + 1
        body = encode_json({"savepoint": savepoint, "created_at": now, "owner": self._owner})
        for _ in range(10_000):
            try:
                self._client.write_exclusive(paths.id_marker_path(base, job_id, candidate), body)
                return candidate
            except CommitConflictError:
                candidate += 1  # another coordinator took it: try the next one
        raise SnapshotStateError(f"job {job_id!r}: could not allocate a snapshot id")

    def _task_handle(self, pending: PendingSnapshot, task_id: str) -> SnapshotTaskHandle:
        if task_id not in pending.task_ids:
            raise InvalidArgumentError(
                f"task {task_id!r} is not part of snapshot {pending.snapshot_id} of job "
                f"{pending.job_id!r} (tasks: {', '.join(pending.task_ids)})"
            )
        return SnapshotTaskHandle(
            job_id=pending.job_id,
            snapshot_id=pending.snapshot_id,
            task_id=task_id,
            savepoint=pending.savepoint,
            deadline=pending.deadline,
            directory=pending.path,
            codec=self.config.codec,
            block_size=self.config.block_size,
            key=self._key,
        )

    # ------------------------------------------------------------------ task state

    def _options(self, codec: str, block_size: int, key: bytes | None) -> FormatOptions:
        return FormatOptions(
            codec=get_codec(codec),
            block_size=block_size,
            key=key,
            workers=self.config.writer_threads,
        )

    def _what(self, h: SnapshotTaskHandle) -> str:
        return f"task {h.task_id!r} of snapshot {h.snapshot_id} of job {h.job_id!r}"

    def _check_open(self, h: SnapshotTaskHandle) -> None:
        """Refuse to write into a snapshot that expired, completed or vanished."""
        now = self._clock()
        if now >= h.deadline:
            raise SnapshotExpiredError(
                f"refusing state of {self._what(h)}: the snapshot expired at {h.deadline:.3f} "
                f"(now {now:.3f}; snapshot.timeout={self.config.timeout:g}s)"
            )
        outcome = self._read_outcome(h.directory, h.job_id, h.snapshot_id, h.savepoint)
        if outcome is not None:
            if outcome.state == EXPIRED:
                raise SnapshotExpiredError(
                    f"refusing state of {self._what(h)}: the snapshot expired"
                )
            raise SnapshotStateError(
                f"refusing state of {self._what(h)}: the snapshot is completed (immutable)"
            )
        if not self._client.exists(paths.pending_path(h.directory)):
            raise SnapshotExpiredError(
                f"refusing state of {self._what(h)}: the snapshot no longer exists ({h.directory})"
            )

    def open_task_writer(self, handle: SnapshotTaskHandle) -> SnapshotTaskWriter:
        """Open a streaming writer for one task's state.

        Use it as a context manager: leaving the block normally commits (the data file is made
        durable, then the task's exclusive commit marker is written); an exception aborts and
        deletes the attempt's file. Works in any process whose store was built from the same
        configuration.

        Raises:
            SnapshotExpiredError: the snapshot expired or no longer exists.
            SnapshotStateError: the snapshot is already completed.
        """
        if not isinstance(handle, SnapshotTaskHandle):
            raise InvalidArgumentError(f"not a SnapshotTaskHandle: {handle!r}")
        self._client.check_path(handle.directory)
        self._check_open(handle)
        attempt = uuid.uuid4().hex[:16]
        path = paths.state_path(handle.directory, handle.task_id, attempt)
        options = self._options(handle.codec, handle.block_size, handle.key)
        context = paths.context_for(handle.job_id, handle.snapshot_id, handle.task_id)
        stream = self._client.create(path)
        try:
            writer = RecordStreamWriter(stream, options, context)
        except BaseException:
            with contextlib.suppress(Exception):
                stream.abort()
            raise
        return SnapshotTaskWriter(self, handle, path, stream, writer)

    def write_task_state(
        self, handle: SnapshotTaskHandle, data: bytes | bytearray | memoryview | Iterable[bytes]
    ) -> None:
        """Write and commit one task's state in one call (bytes or an iterable of chunks)."""
        with self.open_task_writer(handle) as w:
            if isinstance(data, bytes | bytearray | memoryview):
                w.write(data)
            else:
                for chunk in data:
                    w.write(chunk)

    def _commit_task(self, h: SnapshotTaskHandle, path: str, length: int) -> None:
        """Write the task's commit marker for the durable file at ``path``."""
        name = path.rsplit("/", 1)[-1]
        try:
            self._check_open(h)
        except BaseException:
            self._client.delete(path)
            raise
        marker = paths.commit_marker_path(h.directory, h.task_id)
        record = CommitRecord(TaskFile(h.task_id, name, length, h.codec), self._clock())
        try:
            self._records.write_commit(h.directory, h.job_id, h.snapshot_id, record)
        except CommitStateUnknownError:
            raise  # the marker may be in place: delete nothing
        except CommitConflictError:
            self._client.delete(path)
            raise CommitConflictError(
                f"{marker}: {self._what(h)} was already committed by another attempt; "
                "this attempt's state was discarded"
            ) from None
        except BaseException:
            self._client.delete(path)
            raise
        # Expiry may have won the race while the marker was in flight: then undo it.
        outcome = self._read_outcome(h.directory, h.job_id, h.snapshot_id, h.savepoint)
        if outcome is not None and outcome.state == EXPIRED:
            self._client.delete(marker)
            self._client.delete(path)
            raise SnapshotExpiredError(
                f"refusing state of {self._what(h)}: the snapshot expired while it committed"
            )

    def _committed(self, pending: PendingSnapshot) -> tuple[str, ...]:
        commits = self._records.read_commits(pending.path, pending.job_id, pending.snapshot_id)
        return tuple(t for t in pending.task_ids if t in commits)

    # ------------------------------------------------------------------ complete

    def complete(self, job_id: str, snapshot_id: int) -> Snapshot:
        """Publish a snapshot whose tasks have all committed.

        The ``_metadata`` file is written last, exclusively; once it exists the snapshot is
        complete and immutable. Calling this again for a completed snapshot returns it. Old
        checkpoints beyond ``snapshot.retained-count`` are then deleted.

        Raises:
            SnapshotIncompleteError: some tasks have not committed; names them.
            SnapshotExpiredError: the snapshot expired (its deadline passed: it is expired now).
            SnapshotNotFoundError: no such snapshot.
        """
        directory, savepoint = self._find(job_id, snapshot_id)
        outcome = self._read_outcome(directory, job_id, snapshot_id, savepoint)
        if outcome is not None:
            return self._finished(outcome, job_id, snapshot_id)
        record = self._records.read_pending(directory, job_id, snapshot_id)
        if record is None:
            raise SnapshotNotFoundError(
                f"snapshot {snapshot_id} of job {job_id!r} has no begin record ({directory})"
            )
        now = self._clock()
        if now >= record.deadline:
            self._expire(directory, job_id, snapshot_id, savepoint, now)
            outcome = self._read_outcome(directory, job_id, snapshot_id, savepoint)
            if outcome is not None and outcome.state == COMPLETED and outcome.snapshot:
                return outcome.snapshot
            raise SnapshotExpiredError(
                f"snapshot {snapshot_id} of job {job_id!r} expired at {record.deadline:.3f} "
                f"before it was completed (snapshot.timeout={self.config.timeout:g}s)"
            )
        commits = self._records.read_commits(directory, job_id, snapshot_id, check_files=True)
        missing = tuple(t for t in record.task_ids if t not in commits)
        if missing:
            shown = ", ".join(missing[:20]) + (", ..." if len(missing) > 20 else "")
            raise SnapshotIncompleteError(
                f"snapshot {snapshot_id} of job {job_id!r} cannot complete: "
                f"{len(missing)} of {len(record.task_ids)} task(s) have not committed: {shown}",
                missing,
            )
        files = tuple(commits[t].file for t in record.task_ids)
        snap = Snapshot(
            job_id,
            snapshot_id,
            savepoint,
            record.task_ids,
            record.created_at,
            now,
            sum(f.length for f in files),
            directory,
        )
        try:
            self._records.write_completed(snap, files)
        except CommitConflictError:
            outcome = self._read_outcome(directory, job_id, snapshot_id, savepoint)
            if outcome is None:
                raise
            return self._finished(outcome, job_id, snapshot_id)
        with self._lock:
            self._outcomes[directory] = Outcome(COMPLETED, snapshot=snap, files=files)
        self._release(directory)
        self._cleanup_losers(directory, files)
        try:
            self.apply_retention(job_id, upto=snapshot_id)
        except Exception as exc:  # the snapshot is complete; retention retries next time
            _log.warning("retention of job %s failed: %s", job_id, exc)
        return snap

    def _finished(self, outcome: Outcome, job_id: str, snapshot_id: int) -> Snapshot:
        if outcome.state == COMPLETED and outcome.snapshot is not None:
            return outcome.snapshot
        raise SnapshotExpiredError(
            f"snapshot {snapshot_id} of job {job_id!r} expired before it was completed"
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

    def _cleanup_losers(self, directory: str, files: Sequence[TaskFile]) -> None:
        """Delete state files of attempts that did not commit."""
        keep = {f.file for f in files}
        try:
            for info in self._client.list(directory):
                if paths.parse_state_file(info.name) and info.name not in keep:
                    self._client.delete(info.path)
        except Exception as exc:
            _log.warning("could not clean up %s: %s", directory, exc)

    # ------------------------------------------------------------------ expiry

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
        self, job_id: str, now: float, entries: Sequence[_Entry] | None = None
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

    # ------------------------------------------------------------------ queries

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

    def pending(self, job_id: str) -> list[PendingSnapshot]:
        """The job's snapshots begun but neither completed nor expired (overdue ones too)."""
        return [
            PendingSnapshot(self, e.pending, e.path)
            for e in self._scan(job_id)
            if e.pending is not None and e.outcome is None
        ]

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

    # ------------------------------------------------------------------ deletion

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

    def __enter__(self) -> SnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SnapshotStore(base_directories={list(self.config.base_directories)!r}, "
            f"encrypted={self.encrypted})"
        )
