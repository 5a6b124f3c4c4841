"""Retry policies, back-off and the one place that decides what is retried.

The back-off before the k-th retry (k counted from 0) of a task (TASK) or of the whole query
(QUERY) is ``min(retry-initial-delay * retry-delay-scale-factor ** k, retry-max-delay)``, as in
Trino's fault-tolerant execution.
"""

from __future__ import annotations

import concurrent.futures.process
from dataclasses import dataclass
from typing import Literal

from exchange_store.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    QueryFailedError,
    RemoteTaskError,
    StorageError,
    TaskTimeoutError,
    UserError,
    WorkerCrashedError,
)

__all__ = [
    "PolicyKind",
    "QueryFailedError",
    "RemoteTaskError",
    "RetryPolicy",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "is_retryable",
]

PolicyKind = Literal["NONE", "QUERY", "TASK"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failures are retried.

    Attributes:
        kind: NONE (fail on the first failure), QUERY (re-run the query) or TASK (re-run the
            failed task).
        query_retry_attempts: Retries of a whole query under QUERY.
        task_retry_attempts_per_task: Retries of one task under TASK.
        initial_delay: Seconds before the first retry.
        max_delay: Longest wait between retries.
        scale_factor: Growth of the wait per retry (>= 1).
    """

    kind: PolicyKind = "NONE"
    query_retry_attempts: int = 4
    task_retry_attempts_per_task: int = 4
    initial_delay: float = 10.0
    max_delay: float = 60.0
    scale_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in ("NONE", "QUERY", "TASK"):
            raise InvalidArgumentError(f"retry policy {self.kind!r}: allowed: NONE | QUERY | TASK")
        if self.query_retry_attempts < 0 or self.task_retry_attempts_per_task < 0:
            raise InvalidArgumentError("retry attempts must be >= 0")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise InvalidArgumentError("retry delays must be >= 0")
        if self.scale_factor < 1:
            raise InvalidArgumentError(
                f"retry-delay-scale-factor={self.scale_factor}: must be >= 1"
            )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry < 0:
            raise InvalidArgumentError(f"retry number {retry}: must be >= 0")
        try:
            grown = self.initial_delay * self.scale_factor**retry
        except OverflowError:
            return self.max_delay
        return min(grown, self.max_delay)

    @property
    def max_task_runs(self) -> int:
        """Most runs of one task within one query attempt."""
        return 1 + self.task_retry_attempts_per_task if self.kind == "TASK" else 1

    @property
    def max_query_runs(self) -> int:
        """Most runs of the whole query."""
        return 1 + self.query_retry_attempts if self.kind == "QUERY" else 1


# Errors that are a fact about the query, its configuration or its stored data: running the
# same task again gives the same failure.
_NEVER_RETRIED: tuple[type[BaseException], ...] = (
    UserError,
    ConfigurationError,
    InvalidArgumentError,
    IntegrityError,
    BackendNotInstalledError,
    QueryFailedError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

# Always retried: the infrastructure failed, not the query.
_ALWAYS_RETRIED: tuple[type[BaseException], ...] = (
    WorkerCrashedError,
    concurrent.futures.process.BrokenProcessPool,
    StorageError,
    TimeoutError,
    MemoryError,
    ConnectionError,
    OSError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether a task (or query) that failed with ``exc`` may be run again.

    The only place retryability is decided. A :class:`~exchange_store.errors.UserError`
    raised by task code is never retried, nor are configuration, argument and integrity
    errors (running again gives the same answer). A crashed worker, a storage failure, a
    timeout or running out of memory are retried. Any other exception is an internal error,
    retried as Trino retries its internal errors. A :class:`RemoteTaskError` keeps the
    decision made in the worker on the original exception. The Dask ``KilledWorker`` counts
    as a crashed worker.

    Args:
        exc: The failure.

    Returns:
        True when another attempt may succeed.
    """
    if isinstance(exc, RemoteTaskError):
        return exc.retryable
    if isinstance(exc, _NEVER_RETRIED):
        return False
    if isinstance(exc, _ALWAYS_RETRIED):
        return True
    return isinstance(exc, Exception)
