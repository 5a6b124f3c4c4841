"""The thin scheduler: runs a query's stages through the exchange, retrying failures.

Policies (``retry-policy``), as in Trino's fault-tolerant execution:

* NONE: the first failure fails the query.
* QUERY: a failure (a retryable one) re-runs the whole query, up to ``query-retry-attempts``
  more times; results reach the caller only from the attempt that succeeded (deduplication
  buffer).
* TASK: a failed task is re-run alone with a new attempt id, up to
  ``task-retry-attempts-per-task`` more times, reading its inputs from the committed attempts of
  the upstream stages; finished stages never run again.

Stages run one after the other once their inputs are complete. With ``speculation.enabled``
a task running longer than ``speculation.slow-task-threshold`` (once half its stage is done)
gets a duplicate attempt; the first to finish is reported with ``sink_finished`` and the other
is killed. An attempt running longer than ``task.timeout`` is killed and counts as a retryable
failure. Back-off before the k-th retry (k from 0) is
``min(retry-initial-delay * retry-delay-scale-factor ** k, retry-max-delay)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from exchange_store.errors import ConfigurationError
from exchange_store.scheduler.attempt import AttemptFailedError, QueryAttempt
from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.dedup import EXCHANGE_MANAGER_REQUIRED
from exchange_store.scheduler.executors import Executor, create_executor
from exchange_store.scheduler.journal import QueryJournal
from exchange_store.scheduler.model import Query, StorageSpec, snapshot_job_id
from exchange_store.scheduler.records import AttemptRecord, QueryResult, SchedulerEvent
from exchange_store.scheduler.retry import QueryFailedError, RetryPolicy, is_retryable
from exchange_store.scheduler.worker import open_exchange_manager, open_snapshot_store

__all__ = [
    "AttemptRecord",
    "QueryResult",
    "QueryRunner",
    "SchedulerEvent",
]

_log = logging.getLogger(__name__)
NO_EXCHANGE_MANAGER_FOR_STAGES = (
    "An exchange manager must be configured to move data between stages "
    "(etc/exchange-manager.properties)"
)


class QueryRunner:
    """Runs queries with one configuration, executor and storage.

    Args:
        config: Retry policy, executor and speculation settings.
        storage: How coordinator and workers reach the exchange manager and snapshot store.
        executor: Where attempts run; by default one built from ``config`` (closed by
            :meth:`close`).
        clock: Monotonic clock (injectable for tests).
        sleep: Sleep function (injectable for tests).
        listener: Called with every :class:`SchedulerEvent`.
        poll_interval: Seconds between polls when nothing happened.
    """

    def __init__(
        self,
        config: SchedulerConfig,
        storage: StorageSpec,
        *,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        listener: Callable[[SchedulerEvent], None] | None = None,
        poll_interval: float = 0.005,
    ) -> None:
        self._config = config
        self._storage = storage
        self._own_executor = executor is None
        self._executor = executor
        self._clock = clock
        self._sleep = sleep
        self._listener = listener
        self._poll = poll_interval

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy."""
        return self._config.retry

    @property
    def executor(self) -> Executor:
        """The executor (created on first use)."""
        if self._executor is None:
            self._executor = create_executor(
                self._config.executor_type,
                self._config.workers,
                dask_address=self._config.dask_scheduler_address,
            )
        return self._executor

    def close(self) -> None:
        """Close the executor if this runner created it."""
        if self._own_executor and self._executor is not None:
            self._executor.close()
            self._executor = None

    def __enter__(self) -> QueryRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _emit(self, event: SchedulerEvent) -> None:
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:
                _log.exception("scheduler listener failed on %s", event)

    # ------------------------------------------------------------------ query level

    def run(self, query: Query) -> QueryResult:
        """Run ``query`` to completion under the retry policy.

        Returns:
            The rows and statistics of the successful run.

        Raises:
            QueryFailedError: a non-retryable failure, or retries ran out; names the stage,
                the task, the attempts and the last cause.
            ConfigurationError: retries need an exchange manager and none is configured
                (Trino's message), a multi-stage query has none, or the exchange manager or
                snapshot store configuration is invalid.
        """
        policy = self.policy
        manager = open_exchange_manager(self._storage)
        open_snapshot_store(self._storage)  # a bad snapshot configuration fails here, not in tasks
        if manager is None and policy.kind != "NONE":
            raise ConfigurationError(EXCHANGE_MANAGER_REQUIRED)
        if manager is None and len(query.stages) > 1:
            raise ConfigurationError(NO_EXCHANGE_MANAGER_FOR_STAGES)
        started = self._clock()
        attempts: list[AttemptRecord] = []
        failure: AttemptFailedError | None = None
        journal = self._journal(query, manager)
        earlier = journal.load() if journal is not None else None
        first = earlier.query_attempt if earlier is not None else 0
        if journal is not None and earlier is not None:
            self._emit(
                SchedulerEvent(
                    "query-resumed",
                    first,
                    detail=f"{earlier.tasks_finished} tasks finished before ({journal.path})",
                )
            )
        try:
            if journal is not None:
                journal.start(first)
            for query_attempt in range(first, max(first + 1, policy.max_query_runs)):
                if query_attempt > first:
                    delay = policy.delay(query_attempt - 1)
                    self._emit(
                        SchedulerEvent("query-attempt", query_attempt, detail=f"after {delay:g}s")
                    )
                    self._sleep(delay)
                    if journal is not None:
                        journal.new_query_attempt(query_attempt)
                try:
                    result = self._run_attempt(
                        query,
                        query_attempt,
                        manager,
                        attempts,
                        journal,
                        resume=query_attempt == first and manager is not None,
                        after_crash=query_attempt == first and earlier is not None,
                    )
                except AttemptFailedError as exc:
                    failure = exc
                    if not is_retryable(exc.cause):
                        break
                    continue
                result.query_attempts = query_attempt + 1
                result.wall_time = self._clock() - started
                result.resumed = result.resumed or earlier is not None
                return result
        finally:
            if journal is not None:
                journal.close()
        assert failure is not None
        raise self._final_error(query, failure, attempts)

    def _journal(self, query: Query, manager: Any) -> QueryJournal | None:
        """The query's journal, when a restarted coordinator could read it back."""
        if manager is None or len(query.stages) < 2 or not manager.can_reopen:
            return None
        return QueryJournal(
            manager.client,
            manager.base_directories[0],
            query,
            manager.durable_query_key(query.query_id),
            lease_ttl=manager.config.lease_ttl,
        )

    def _final_error(
        self, query: Query, failure: AttemptFailedError, attempts: list[AttemptRecord]
    ) -> QueryFailedError:
        policy = self.policy
        cause = failure.cause
        retryable = is_retryable(cause)
        query_runs = 1 + max((a.query_attempt for a in attempts), default=0)
        if not retryable:
            why = "failed with a non-retryable error"
        elif policy.kind == "NONE":
            why = "failed (retry-policy=NONE)"
        elif policy.kind == "QUERY":
            why = (
                f"failed in all {query_runs} query attempts "
                f"(query-retry-attempts={policy.query_retry_attempts})"
            )
        else:
            why = (
                "failed; task retries exhausted "
                f"(task-retry-attempts-per-task={policy.task_retry_attempts_per_task})"
            )
        message = (
            f"Query {query.query_id} {why}: stage {failure.stage_id} task {failure.task_id} "
            f"ran {failure.runs} attempt{'s' if failure.runs != 1 else ''}; last error: {cause}"
        )
        error = QueryFailedError(
            message,
            stage_id=failure.stage_id,
            task_id=failure.task_id,
            attempts=failure.runs if policy.kind != "QUERY" else query_runs,
            cause=cause,
        )
        error.__cause__ = cause
        return error

    # ------------------------------------------------------------------ one query attempt

    def _run_attempt(
        self,
        query: Query,
        query_attempt: int,
        manager: Any,
        records: list[AttemptRecord],
        journal: QueryJournal | None,
        *,
        resume: bool,
        after_crash: bool = False,
    ) -> QueryResult:
        attempt = QueryAttempt(
            query,
            query_attempt,
            self._config,
            self._storage,
            manager,
            self.executor,
            records,
            clock=self._clock,
            sleep=self._sleep,
            emit=self._emit,
            poll_interval=self._poll,
            journal=journal,
            resume=resume,
            after_crash=after_crash,
        )
        try:
            return attempt.run()
        finally:
            self._drop_snapshots(query, query_attempt)

    def _drop_snapshots(self, query: Query, query_attempt: int) -> None:
        if not self._storage.has_snapshot_store:
            return
        try:
            store = open_snapshot_store(self._storage)
            if store is None:
                return
            wanted = {
                snapshot_job_id(query.query_id, query_attempt, s.stage_id, t)
                for s in query.stages
                for t in range(s.task_count)
            }
            for job in store.list_jobs():
                if job in wanted:
                    store.drop_job(job)
        except Exception:
            _log.exception("could not drop the task snapshots of query %s", query.query_id)
