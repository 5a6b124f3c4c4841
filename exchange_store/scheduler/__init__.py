"""The thin scheduler: stages of tasks through the exchange, with Trino-style retries.

Example::

    runner = QueryRunner(SchedulerConfig.from_etc("etc"), StorageSpec.from_etc("etc"))
    result = runner.run(Query("q1", [Stage("scan", scan, 8, output_partitions=4), ...]))
"""

from __future__ import annotations

from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.dedup import EXCHANGE_MANAGER_REQUIRED, DeduplicationBuffer
from exchange_store.scheduler.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    ThreadExecutor,
    create_executor,
)
from exchange_store.scheduler.model import Query, Stage, StorageSpec, TaskContext
from exchange_store.scheduler.records import AttemptRecord, QueryResult, SchedulerEvent
from exchange_store.scheduler.retry import (
    QueryFailedError,
    RetryPolicy,
    TaskTimeoutError,
    WorkerCrashedError,
    is_retryable,
)
from exchange_store.scheduler.runner import QueryRunner

__all__ = [
    "EXCHANGE_MANAGER_REQUIRED",
    "AttemptRecord",
    "DaskExecutor",
    "DeduplicationBuffer",
    "Executor",
    "ProcessExecutor",
    "Query",
    "QueryFailedError",
    "QueryResult",
    "QueryRunner",
    "RetryPolicy",
    "SchedulerConfig",
    "SchedulerEvent",
    "Stage",
    "StorageSpec",
    "TaskContext",
    "TaskTimeoutError",
    "ThreadExecutor",
    "WorkerCrashedError",
    "create_executor",
    "is_retryable",
]
