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
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

from exchange_store.config import load_etc
from exchange_store.errors import (
    CommitConflictError,
    CommitStateUnknownError,
    ConfigurationError,
    InvalidArgumentError,
)
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.lease import Lease
from exchange_store.format import (
    RecordStreamWriter,
)
from exchange_store.ids import check_id
from exchange_store.snapshots import paths
from exchange_store.snapshots.config import SnapshotStoreConfig, build_client
from exchange_store.snapshots.keys import resolve_key
from exchange_store.snapshots.maintenance import SnapshotMaintenance
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
from exchange_store.snapshots.records import COMPLETED, EXPIRED, Outcome
from exchange_store.snapshots.writer import SnapshotTaskWriter

__all__ = ["SnapshotStore", "SnapshotTaskWriter"]

_log = logging.getLogger(__name__)


class SnapshotStore(SnapshotMaintenance):
    """Task-state snapshots of jobs, on any filesystem client.

    Thread-safe. Several processes (a coordinator and its workers, or a restarted coordinator)
    may use stores built from the same configuration over the same storage at once. Built with
    :meth:`from_etc` or :meth:`from_properties`, or directly as a
    :class:`~exchange_store.snapshots.catalog.SnapshotCatalog` (same arguments).
    """

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
        return SnapshotTaskWriter(self._commit_task, self._client, handle, path, stream, writer)

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

    def pending(self, job_id: str) -> list[PendingSnapshot]:
        """The job's snapshots begun but neither completed nor expired (overdue ones too)."""
        return [
            PendingSnapshot(self, e.pending, e.path)
            for e in self._scan(job_id)
            if e.pending is not None and e.outcome is None
        ]

    def __enter__(self) -> SnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
