"""Where task attempts run: threads, one local process per attempt, or Dask distributed.

An executor starts one attempt at a time (:meth:`Executor.submit`) and hands back a
:class:`RunningAttempt` the runner polls. The runner never submits more than
:attr:`Executor.slots` attempts at once, so executors do not queue.

With processes, every attempt is its own process (``forkserver`` where available, else
``spawn``): a worker killed by SIGKILL or the OOM killer is a :class:`WorkerCrashedError` of
exactly that attempt, and the runner can kill an attempt (timeout, speculative loser).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from exchange_store.errors import BackendNotInstalledError, ConfigurationError
from exchange_store.scheduler.model import TaskOutcome, TaskSpec
from exchange_store.scheduler.retry import WorkerCrashedError
from exchange_store.scheduler.worker import process_main, run_task, to_remote_error

__all__ = [
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "RunningAttempt",
    "ThreadExecutor",
    "create_executor",
]

_DASK_KILL_WAIT = 10.0
_PRELOAD = [
    "exchange_store.scheduler.worker",
    "exchange_store.exchange.manager",
    "exchange_store.exchange.sink",
    "exchange_store.exchange.source",
    "exchange_store.snapshots",
    "exchange_store.arrow",
    "pyarrow",
]


class RunningAttempt(ABC):
    """One submitted attempt."""

    @abstractmethod
    def done(self) -> bool:
        """Whether the attempt ended (finished, failed or crashed)."""

    @abstractmethod
    def outcome(self) -> TaskOutcome:
        """The outcome; only after :meth:`done` returned True."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the attempt as far as the executor can (its output is never used)."""


class Executor(ABC):
    """Runs task attempts."""

    name: str = "executor"

    @property
    @abstractmethod
    def slots(self) -> int:
        """Attempts that may run at once."""

    @abstractmethod
    def submit(self, spec: TaskSpec) -> RunningAttempt:
        """Start one attempt now."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the executor's resources."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- threads


class _ThreadAttempt(RunningAttempt):
    def __init__(self, future: Future[TaskOutcome], cancel: threading.Event) -> None:
        self._future = future
        self._cancel = cancel

    def done(self) -> bool:
        return self._future.done()

    def outcome(self) -> TaskOutcome:
        try:
            return self._future.result()
        except BaseException as exc:  # run_task never raises; a cancelled future does
            return TaskOutcome(ok=False, error=exc)

    def kill(self) -> None:
        self._cancel.set()
        self._future.cancel()


class ThreadExecutor(Executor):
    """Attempts run in threads of this process.

    A thread cannot be killed: a timed-out or losing attempt is told through
    ``TaskContext.cancelled`` and its output is ignored.
    """

    name = "threads"

    def __init__(self, workers: int) -> None:
        self._workers = max(1, workers)
        # Extra threads so abandoned (killed) attempts do not hold the runner's slots.
        self._pool = ThreadPoolExecutor(self._workers * 2, thread_name_prefix="xs-task")

    @property
    def slots(self) -> int:
        """Attempts that may run at once."""
        return self._workers

    def submit(self, spec: TaskSpec) -> RunningAttempt:
        """Start one attempt in a thread."""
        cancel = threading.Event()
        return _ThreadAttempt(self._pool.submit(run_task, spec, cancel), cancel)

    def close(self) -> None:
        """Wait for running threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------- processes


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class _ProcessAttempt(RunningAttempt):
    def __init__(self, process: Any, conn: Any, spec: TaskSpec) -> None:
        self._process = process
        self._conn = conn
        self._spec = spec
        self._outcome: TaskOutcome | None = None
        self.killed = False

    @property
    def pid(self) -> int | None:
        return int(self._process.pid) if self._process.pid is not None else None

    def _receive(self) -> bool:
        """Take the worker's outcome if it has been sent; whether one was taken."""
        try:
            if self._conn.poll():
                self._outcome = self._conn.recv()
                self._finish()
                return True
        except (EOFError, OSError):
            pass
        return False

    def done(self) -> bool:
        if self._outcome is not None or self._receive():
            return True
        if self._process.is_alive():
            return False
        # The result may have arrived between the poll and the process's exit.
        if self._receive():
            return True
        self._process.join()
        why = _describe_exit(self._process.exitcode)
        self._outcome = TaskOutcome(
            ok=False,
            error=WorkerCrashedError(
                f"worker process {self._process.pid} running task {self._spec.name} of query "
                f"{self._spec.query_id} {why}"
            ),
        )
        self._finish()
        return True

    def _finish(self) -> None:
        self._process.join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(ValueError):
            self._process.close()

    def outcome(self) -> TaskOutcome:
        if self._outcome is None:
            raise RuntimeError("attempt still running")
        return self._outcome

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ValueError, OSError):
            if self._process.is_alive():
                self._process.kill()


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class ProcessExecutor(Executor):
    """One local process per attempt (forkserver, else spawn)."""

    name = "processes"

    def __init__(self, workers: int) -> None:
        self._workers = max(1, workers)
        self._ctx = _context()
        self._running: list[_ProcessAttempt] = []

    @property
    def slots(self) -> int:
        """Attempts that may run at once."""
        return self._workers

    def submit(self, spec: TaskSpec) -> RunningAttempt:
        """Start a process for the attempt."""
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=process_main,
            args=(sender, spec),
            name=f"xs-task-{spec.stage_id}-{spec.task_id}-{spec.attempt_id}",
            daemon=True,
        )
        process.start()
        sender.close()
        attempt = _ProcessAttempt(process, receiver, spec)
        self._running = [a for a in self._running if a._outcome is None]
        self._running.append(attempt)
        return attempt

    def close(self) -> None:
        """Kill attempts still running."""
        for attempt in self._running:
            if attempt._outcome is None:
                attempt.kill()
                attempt.done()
        self._running = []


# ---------------------------------------------------------------------------- dask


class DaskCancelFlag:
    """A cancel flag a Dask task polls: a ``distributed.Event`` on the scheduler."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._event: Any = None

    def is_set(self) -> bool:
        """Whether the coordinator set the event."""
        import distributed

        if self._event is None:
            self._event = distributed.Event(self._name)
        return bool(self._event.is_set())


def run_dask_task(spec: TaskSpec, cancel_name: str) -> TaskOutcome:
    """What a Dask worker runs: :func:`run_task` with a cancel flag on the scheduler.

    The first run of an attempt marks it started (an Event on the scheduler). Dask runs a key
    again when the worker running it died (up to the scheduler's ``allowed-failures``, 3 by
    default on a cluster the user brings): such a re-run finds the mark and fails at once with
    :class:`WorkerCrashedError`, so the runner, not Dask, retries, with a new attempt id and
    its back-off, on any cluster.
    """
    if not _mark_started(cancel_name):
        task = cancel_name.removesuffix("-cancel")
        error = WorkerCrashedError(f"dask worker running {task} was lost; Dask ran it again")
        return TaskOutcome(ok=False, error=to_remote_error(error))
    return run_task(spec, DaskCancelFlag(cancel_name))


def _mark_started(cancel_name: str) -> bool:
    """Mark an attempt started; False when an earlier run of it already had."""
    import distributed

    started = distributed.Event(_started_name(cancel_name))
    if started.is_set():
        return False
    started.set()
    return True


def _started_name(cancel_name: str) -> str:
    return f"{cancel_name.removesuffix('-cancel')}-started"


class _DaskAttempt(RunningAttempt):
    def __init__(self, future: Any, client: Any, cancel_name: str) -> None:
        self._future = future
        self._client = client
        self._cancel_name = cancel_name
        self._killed_at: float | None = None
        self._outcome: TaskOutcome | None = None

    def done(self) -> bool:
        if self._future.done():
            return True
        if self._killed_at is not None and time.monotonic() - self._killed_at > _DASK_KILL_WAIT:
            # The task ignored the cancel flag: stop waiting for it.
            with contextlib.suppress(Exception):
                self._future.cancel()
            return True
        return False

    def outcome(self) -> TaskOutcome:
        if self._outcome is None:
            try:
                self._outcome = self._future.result()
            except Exception as exc:
                name = type(exc).__name__
                if name in ("KilledWorker", "CommClosedError", "FutureCancelledError"):
                    task = self._cancel_name.removesuffix("-cancel")
                    error: BaseException = WorkerCrashedError(
                        f"dask worker running {task} was lost ({name})"
                    )
                else:
                    error = exc
                self._outcome = TaskOutcome(ok=False, error=error)
            self._forget_started()
        assert self._outcome is not None
        return self._outcome

    def _forget_started(self) -> None:
        """Drop the attempt's started mark from the scheduler (it only guards re-runs)."""
        import distributed

        with contextlib.suppress(Exception):
            distributed.Event(_started_name(self._cancel_name), client=self._client).clear()

    def kill(self) -> None:
        """Set the attempt's cancel flag; the task ends at its next check.

        Dask cannot stop a running task. The future is cancelled only once the task ended
        (or ignored the flag for a while), so the coordinator does not close an exchange under
        a task that is still writing.
        """
        if self._killed_at is None:
            self._killed_at = time.monotonic()
            with contextlib.suppress(Exception):
                import distributed

                distributed.Event(self._cancel_name, client=self._client).set()


_NO_PROFILER = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"


class DaskExecutor(Executor):
    """Attempts run as Dask distributed tasks; the exchange lives on shared storage.

    Args:
        workers: Worker processes for the LocalCluster started when no address is given.
        address: A running scheduler's address, or None.
        client: An existing ``distributed.Client`` (then neither of the above is used).
    """

    name = "dask"

    def __init__(self, workers: int, address: str | None = None, client: Any = None) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise BackendNotInstalledError(
                "executor.type=dask needs dask distributed: pip install 'exchange-store[dask]'"
            ) from exc
        self._own_cluster: Any = None
        self._own_client = client is None
        if client is None:
            if address:
                client = distributed.Client(address)
            else:
                import dask

                # A worker that dies fails the attempt at once (KilledWorker): the runner,
                # not Dask, decides about retries and gives the retry a new attempt id.
                # The workers' statistical profiler is off: on CPython before 3.12 its
                # sys._current_frames() can run the garbage collector with the thread-list lock
                # held and deadlock the worker (CPython gh-106883), which our short-lived
                # encoding threads made likely (seen: 2 demo runs of 40 hung). Nannies hand
                # their process's configuration to the workers they (re)start, after this
                # block: so it is set for this process, and in the environment for good.
                os.environ.setdefault(_NO_PROFILER, "False")
                dask.config.set({"distributed.worker.profile.enabled": False})
                with dask.config.set(
                    {
                        "distributed.scheduler.allowed-failures": 0,
                        "distributed.worker.profile.enabled": False,
                    }
                ):
                    self._own_cluster = distributed.LocalCluster(
                        n_workers=max(1, workers),
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",
                    )
                client = distributed.Client(self._own_cluster)
        self._client = client
        info = client.scheduler_info()
        threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        self._slots = max(1, threads or workers)

    @property
    def slots(self) -> int:
        """Threads of the cluster's workers."""
        return self._slots

    def submit(self, spec: TaskSpec) -> RunningAttempt:
        """Submit the attempt as a Dask task (never retried by Dask itself)."""
        key = (
            f"xs-{spec.query_id}-{spec.query_attempt}-{spec.stage_id}-{spec.task_id}-"
            f"{spec.attempt_id}"
        )
        future = self._client.submit(
            run_dask_task, spec, f"{key}-cancel", key=key, pure=False, retries=0
        )
        return _DaskAttempt(future, self._client, f"{key}-cancel")

    def close(self) -> None:
        """Close the client and the LocalCluster this executor started."""
        if self._own_client:
            self._client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


def create_executor(kind: str, workers: int, *, dask_address: str | None = None) -> Executor:
    """The executor for ``executor.type``.

    Raises:
        ConfigurationError: an unknown type.
        BackendNotInstalledError: dask without its packages.
    """
    if kind == "threads":
        return ThreadExecutor(workers)
    if kind == "processes":
        return ProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(workers, dask_address)
    raise ConfigurationError(f"executor.type={kind!r}: allowed: threads | processes | dask")
