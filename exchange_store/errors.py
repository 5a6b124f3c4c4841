"""The single error tree of exchange-store.

Every error raised by the package inherits :class:`ExchangeStoreError`. Domain errors also
inherit the matching builtin, so ``except FileNotFoundError`` keeps working for callers that
do not know this package.
"""

from __future__ import annotations

__all__ = [
    "AttemptFailedError",
    "AttemptNotCommittedError",
    "BackendNotInstalledError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "ConfigurationError",
    "ExchangeClosedError",
    "ExchangeStateError",
    "ExchangeStoreError",
    "IntegrityError",
    "InvalidArgumentError",
    "LostInput",
    "LostInputError",
    "QueryFailedError",
    "RemoteTaskError",
    "SnapshotExpiredError",
    "SnapshotIncompleteError",
    "SnapshotNotFoundError",
    "SnapshotStateError",
    "StorageError",
    "StorageFileNotFoundError",
    "TaskTimeoutError",
    "TooManyPendingSnapshotsError",
    "TransientStorageError",
    "UnknownFormatVersionError",
    "UserError",
    "WorkerCrashedError",
]


class ExchangeStoreError(Exception):
    """Root of every error raised by exchange-store."""


class ConfigurationError(ExchangeStoreError, ValueError):
    """A configuration file, key or value is missing or wrong; the message names which."""


class InvalidArgumentError(ExchangeStoreError, ValueError):
    """An argument to the public API is out of its allowed range or of the wrong form."""


class IntegrityError(ExchangeStoreError):
    """Stored bytes were changed, truncated, moved or read with the wrong key.

    Data that fails a check is never returned; this error is raised instead.
    """


LostInput = tuple[str, str, int, int]
"""(query id, exchange id, task partition id, attempt id) of committed output found lost."""


class LostInputError(IntegrityError):
    """Committed exchange data was found changed, truncated or missing while reading it.

    It names the producers whose output is lost, so a scheduler can re-run them (lineage)
    instead of failing the query. Nothing of the lost data was returned.

    Attributes:
        lost: ``(query_id, exchange_id, task_partition_id, attempt_id)`` of every producer
            whose committed output the failed read covered.
    """

    def __init__(self, message: str, lost: tuple[LostInput, ...] = ()) -> None:
        super().__init__(message)
        self.lost = tuple(lost)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.lost))


class StorageError(ExchangeStoreError, OSError):
    """The filesystem failed (after retries). The message names the full URI at fault.

    Raised as ``StorageError(errno, message)`` with ``filename`` set to the URI; ``str()`` is the
    message alone (which already names the URI), not OSError's ``[Errno n] ...: 'uri'`` form.
    """

    def __str__(self) -> str:
        if isinstance(self.strerror, str) and self.strerror:
            return self.strerror
        return super().__str__()


class TransientStorageError(StorageError):
    """A storage failure that may succeed when tried again (throttling, 5xx, timeouts)."""


class StorageFileNotFoundError(StorageError, FileNotFoundError):
    """A path that should exist does not."""


class CommitConflictError(StorageError, FileExistsError):
    """An exclusive create found the path already present (another attempt won)."""


class CommitStateUnknownError(StorageError):
    """A commit was sent but its outcome is unknown; nothing may be deleted on this basis."""


class BackendNotInstalledError(ExchangeStoreError, ImportError):
    """An optional backend's package is missing; the message gives the pip extra to install."""


class UserError(ExchangeStoreError):
    """Raised by task code for an error of the query itself; never retried by the scheduler."""


class UnknownFormatVersionError(IntegrityError):
    """The file was written by a newer (or unknown) version of the format."""


# ---------------------------------------------------------------------- exchange


class ExchangeStateError(InvalidArgumentError):
    """A coordinator call came in the wrong state (closed, or too early)."""


class AttemptNotCommittedError(InvalidArgumentError):
    """An attempt reported finished has no manifest: it never committed."""


class ExchangeClosedError(ExchangeStoreError):
    """The exchange was closed (or collected) under a late sink or source.

    A sink that gets it has removed what it wrote; nothing of the closed exchange is recreated.
    """


# ---------------------------------------------------------------------- snapshots


class SnapshotStateError(ExchangeStoreError):
    """An operation does not fit the snapshot's state (expired, completed, incomplete, ...)."""


class SnapshotExpiredError(SnapshotStateError):
    """The snapshot expired (or was deleted); late writes and completion are refused."""


class SnapshotIncompleteError(SnapshotStateError):
    """complete() was called before every task committed.

    Attributes:
        missing: The task ids without a commit.
    """

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing


class TooManyPendingSnapshotsError(SnapshotStateError):
    """begin() found ``snapshot.max-concurrent`` unexpired pending snapshots for the job."""


class SnapshotNotFoundError(ExchangeStoreError, LookupError):
    """No such snapshot (or task in it)."""


# ---------------------------------------------------------------------- scheduler


class QueryFailedError(ExchangeStoreError):
    """A query failed for good: the message names the stage, task, attempts and last cause.

    Attributes:
        stage_id: The stage of the task that failed last.
        task_id: That task's partition number.
        attempts: How many times the task (or, under QUERY, the query) ran.
        cause: The last failure.
    """

    def __init__(
        self,
        message: str,
        *,
        stage_id: str | None = None,
        task_id: int | None = None,
        attempts: int = 0,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.stage_id = stage_id
        self.task_id = task_id
        self.attempts = attempts
        self.cause = cause


class AttemptFailedError(ExchangeStoreError):
    """A query attempt failed: which task, after how many runs, and why."""

    def __init__(self, stage_id: str, task_id: int, runs: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.stage_id = stage_id
        self.task_id = task_id
        self.runs = runs
        self.cause = cause


class WorkerCrashedError(ExchangeStoreError):
    """The process running a task attempt died without reporting (SIGKILL, OOM killer...)."""


class TaskTimeoutError(ExchangeStoreError, TimeoutError):
    """A task attempt ran longer than ``task.timeout`` and was killed."""


class RemoteTaskError(ExchangeStoreError):
    """A failure raised in a worker, carried back to the coordinator as text.

    The original exception is classified in the worker (it may not unpickle on the
    coordinator) and kept as its type name, message and traceback.

    Attributes:
        type_name: Qualified class name of the original exception.
        retryable: What the worker's retry classification said about the original exception.
        remote_traceback: The formatted traceback from the worker.
        lost: The lost inputs of a :class:`LostInputError` (empty otherwise), so the
            coordinator can re-run their producers.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        retryable: bool,
        remote_traceback: str = "",
        lost: tuple[LostInput, ...] = (),
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.retryable = retryable
        self.remote_traceback = remote_traceback
        self.lost = tuple(lost)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            RemoteTaskError,
            (self.type_name, self.message, self.retryable, self.remote_traceback, self.lost),
        )
