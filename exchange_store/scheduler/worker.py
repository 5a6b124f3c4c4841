"""The worker side: run one task attempt from a picklable :class:`TaskSpec`.

:func:`run_task` is what every executor calls (in a thread, a fresh process or a Dask
worker). It rebuilds the exchange manager and the snapshot store from the spec's
:class:`StorageSpec` (cached per process), opens the task's sources and sink, calls the task,
then commits (``finish``) or discards (``abort``) the attempt. Failures come back as a
:class:`TaskOutcome` holding a :class:`RemoteTaskError` classified here, where the original
exception still exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from exchange_store.errors import IntegrityError, LostInputError
from exchange_store.scheduler.model import (
    CancelFlag,
    ResultSink,
    StorageSpec,
    TaskContext,
    TaskOutcome,
    TaskSpec,
    snapshot_job_id,
)
from exchange_store.scheduler.retry import RemoteTaskError, is_retryable
from exchange_store.snapshots.model import TooManyPendingSnapshotsError

if TYPE_CHECKING:
    from exchange_store.exchange.manager import ExchangeManager

__all__ = [
    "CountingSink",
    "SnapshotTaskState",
    "open_exchange_manager",
    "open_snapshot_store",
    "run_task",
    "to_remote_error",
]

_log = logging.getLogger(__name__)
_STATE_TASK = "state"
_lock = threading.Lock()
_managers: dict[bytes, Any] = {}
_stores: dict[bytes, Any] = {}


def _cache_key(storage: StorageSpec) -> bytes:
    return pickle.dumps(storage)


def _cached(cache: dict[bytes, Any], storage: StorageSpec, build: Callable[[], Any]) -> Any:
    """One object per storage description and process, built on first use."""
    key = _cache_key(storage)
    with _lock:
        if key not in cache:
            cache[key] = build()
        return cache[key]


def _filesystems(spec: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]]:
    return {name: dict(props) for name, props in (spec or {}).items()}


def open_exchange_manager(storage: StorageSpec) -> ExchangeManager | None:
    """The exchange manager ``storage`` describes (one per process), or None.

    Raises:
        ConfigurationError: the configuration is invalid.
    """
    if not storage.has_exchange_manager:
        return None
    from exchange_store.exchange.manager import ExchangeManager

    def build() -> ExchangeManager:
        if storage.exchange_properties is not None:
            return ExchangeManager.from_properties(
                dict(storage.exchange_properties),
                filesystems=_filesystems(storage.exchange_filesystems),
            )
        assert storage.etc_dir is not None
        return ExchangeManager.from_etc(storage.etc_dir)

    manager: ExchangeManager = _cached(_managers, storage, build)
    return manager


def open_snapshot_store(storage: StorageSpec) -> Any | None:
    """The snapshot store ``storage`` describes (one per process), or None.

    Raises:
        ConfigurationError: the configuration is invalid.
    """
    if not storage.has_snapshot_store:
        return None
    from exchange_store.snapshots import SnapshotStore

    def build() -> SnapshotStore:
        if storage.snapshot_properties is not None:
            return SnapshotStore.from_properties(
                dict(storage.snapshot_properties),
                filesystems=_filesystems(storage.snapshot_filesystems),
                key=storage.snapshot_key,
            )
        assert storage.etc_dir is not None
        return SnapshotStore.from_etc(storage.etc_dir)

    return _cached(_stores, storage, build)


class SnapshotTaskState:
    """A task's saved state: one snapshot-store job, each save a one-task snapshot.

    The store's retention keeps the last few saves; the coordinator drops the job when the
    query ends.
    """

    def __init__(self, store: Any, job_id: str) -> None:
        self._store = store
        self._job_id = job_id

    @property
    def job_id(self) -> str:
        """The snapshot-store job."""
        return self._job_id

    def save(self, data: bytes) -> None:
        """Begin, write and complete a snapshot holding ``data``.

        A save left pending by an earlier attempt that died mid-save would block this one
        until ``snapshot.timeout``; it is abandoned, so it is expired at once instead.
        """
        try:
            pending = self._store.begin(self._job_id, [_STATE_TASK])
        except TooManyPendingSnapshotsError:
            self._store.abort_pending(self._job_id)
            pending = self._store.begin(self._job_id, [_STATE_TASK])
        self._store.write_task_state(pending.task_handle(_STATE_TASK), data)
        pending.complete()

    def restore(self) -> bytes | None:
        """The newest completed save that reads back intact, or None.

        A damaged save is logged and skipped for the one before it (the task then redoes a
        little more work); with none intact the task starts from the beginning.
        """
        try:
            snapshots = self._store.list_snapshots(self._job_id)
        except IntegrityError as exc:
            _log.warning("task state %s unreadable, starting afresh: %s", self._job_id, exc)
            return None
        for snapshot in reversed(snapshots):
            try:
                return b"".join(self._store.read_task_state(snapshot, _STATE_TASK))
            except IntegrityError as exc:
                _log.warning(
                    "task state %s snapshot %s damaged, trying an older one: %s",
                    self._job_id,
                    snapshot.snapshot_id,
                    exc,
                )
        return None


class CountingSink:
    """Wraps a sink and counts the records and bytes added through it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.records = 0
        self.bytes = 0

    def add(self, partition_id: int, data: bytes | bytearray | memoryview) -> None:
        """Add one record to the wrapped sink."""
        size = memoryview(data).nbytes
        self._inner.add(partition_id, data)
        self.records += 1
        self.bytes += size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def to_remote_error(exc: BaseException) -> RemoteTaskError:
    """Classify ``exc`` now and keep it as a picklable :class:`RemoteTaskError`."""
    if isinstance(exc, RemoteTaskError):
        return exc
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    text = "".join(traceback.format_exception(exc))
    lost = exc.lost if isinstance(exc, LostInputError) else ()
    remote = RemoteTaskError(name, str(exc), is_retryable(exc), text, lost)
    remote.__cause__ = exc
    return remote


def run_task(spec: TaskSpec, cancel_event: CancelFlag | None = None) -> TaskOutcome:
    """Run one task attempt and commit or discard its output.

    Never raises for a failure of the task: the outcome says what happened.
    """
    started = time.monotonic()
    sources: list[Any] = []
    sink: Any = None
    counting: CountingSink | None = None
    try:
        manager = open_exchange_manager(spec.storage)
        if (spec.sink_instance is not None or spec.inputs) and manager is None:
            from exchange_store.errors import ConfigurationError

            raise ConfigurationError("task needs an exchange manager but none is configured")
        if spec.sink_instance is not None:
            assert manager is not None
            # The engine may run this very attempt again (Dask recomputes a lost key with the
            # same arguments): a committed run is final, so its work is not done twice.
            receipt = manager.committed_receipt(spec.sink_instance)
            if receipt is not None:
                return TaskOutcome(
                    ok=True,
                    duration=time.monotonic() - started,
                    receipt=receipt,
                    reused=True,
                )
        inputs: dict[str, Any] = {}
        for stage_id, handles in spec.inputs:
            assert manager is not None
            source = manager.create_source(handles)
            source.no_more_source_handles()
            sources.append(source)
            inputs[stage_id] = source
        if spec.sink_instance is None:
            sink = ResultSink()
        else:
            assert manager is not None
            sink = manager.create_sink(spec.sink_instance)
        counting = CountingSink(sink)
        store = open_snapshot_store(spec.storage)
        state = None
        if store is not None:
            job = snapshot_job_id(spec.query_id, spec.query_attempt, spec.stage_id, spec.task_id)
            state = SnapshotTaskState(store, job)
        ctx = TaskContext(
            query_id=spec.query_id,
            query_attempt=spec.query_attempt,
            stage_id=spec.stage_id,
            task_id=spec.task_id,
            attempt_id=spec.attempt_id,
            task_count=spec.task_count,
            output_partition_count=spec.output_partition_count,
            sources=sources,
            inputs=inputs,
            sink=counting,
            state=state,
            cancel_event=cancel_event,
        )
        spec.task(ctx)
        receipt = sink.finish()
    except Exception as exc:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        return TaskOutcome(
            ok=False,
            error=to_remote_error(exc),
            duration=time.monotonic() - started,
        )
    finally:
        for source in sources:
            with contextlib.suppress(Exception):
                source.close()
    return TaskOutcome(
        ok=True,
        results=sink.records if isinstance(sink, ResultSink) else [],
        records_written=counting.records,
        bytes_written=counting.bytes,
        duration=time.monotonic() - started,
        receipt=None if isinstance(sink, ResultSink) else receipt,
    )


def process_main(conn: Any, spec: TaskSpec) -> None:
    """Entry point of a per-attempt worker process: run, send the outcome, exit.

    The process ends with ``os._exit`` right after the outcome is sent: the attempt is
    committed (or discarded) by then, and waiting for background threads of cached clients
    (lease refreshers, pools) would only delay the coordinator.
    """
    with contextlib.suppress(OSError):
        os.chdir(spec.storage.cwd)
    outcome = run_task(spec)
    if outcome.error is not None:
        outcome.error.__cause__ = None
    try:
        conn.send(outcome)
    except Exception as exc:  # an unpicklable result
        conn.send(TaskOutcome(ok=False, error=to_remote_error(exc)))
    finally:
        conn.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)
