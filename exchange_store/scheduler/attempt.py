"""One run of a query: stages in order, tasks on the executor, commits through the exchange.

:class:`QueryAttempt` is the scheduler's loop for one query attempt. The policy level
(:class:`~exchange_store.scheduler.runner.QueryRunner`) decides whether a failed query attempt
runs again; here a failed task is retried (TASK policy) or fails the attempt by raising
:class:`AttemptFailedError`.

Per stage the loop creates the stage's exchange when its inputs are complete, adds one sink
per task, and for each attempt sends an instance handle (and the upstream source handles) to
the executor. The first attempt of a task to finish is reported with ``sink_finished``; other
attempts are killed and their data is never read. When every task finished, the stage's
source handles feed the next stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchange_store.errors import (
    AttemptFailedError,
    IntegrityError,
    InvalidArgumentError,
)
from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.dedup import DeduplicationBuffer
from exchange_store.scheduler.executors import Executor, RunningAttempt
from exchange_store.scheduler.journal import QueryJournal
from exchange_store.scheduler.model import Query, Stage, StorageSpec, TaskOutcome, TaskSpec
from exchange_store.scheduler.records import AttemptRecord, QueryResult, SchedulerEvent
from exchange_store.scheduler.retry import TaskTimeoutError, is_retryable

__all__ = ["AttemptFailedError", "QueryAttempt"]

_log = logging.getLogger(__name__)
_DEDUP_DEFAULT = 32 << 20
_KILL_WAIT = 15.0


@dataclass(slots=True)
class _Running:
    attempt_id: int
    handle: RunningAttempt
    started: float
    speculative: bool
    delay: float


@dataclass(slots=True)
class _Task:
    stage: Stage
    task_id: int
    sink_handle: Any = None
    runs: int = 0
    failures: int = 0
    next_attempt: int = 0
    not_before: float = 0.0
    next_delay: float = 0.0
    finished: bool = False
    speculated: bool = False
    running: dict[int, _Running] = field(default_factory=dict)


@dataclass(slots=True)
class _StageRun:
    stage: Stage
    tasks: list[_Task]
    exchange: Any = None
    handles: list[Any] = field(default_factory=list)
    started: bool = False
    finished: bool = False
    bytes_spooled: int = 0

    @property
    def stored(self) -> int:
        return sum(h.data_size for h in self.handles)

    def done_fraction(self) -> float:
        return sum(t.finished for t in self.tasks) / len(self.tasks)


class QueryAttempt:
    """Runs one attempt of a query to its end.

    Args:
        query: The query.
        query_attempt: Which run of the query this is.
        config: Retry, timeout and speculation settings.
        storage: Sent to workers with every task.
        manager: The coordinator's exchange manager (None only for a one-stage query).
        executor: Where attempts run.
        records: Every attempt that ran is appended here.
        clock: Monotonic clock.
        sleep: Sleep function.
        emit: Receives progress events.
        poll_interval: Seconds between polls while attempts run.
        journal: Where progress is recorded for a restarted coordinator, or None.
        resume: Reopen the stages' exchanges left on storage by an earlier coordinator of
            the same query (their finished tasks are not run again).
        after_crash: An earlier coordinator ran this query attempt (its journal was found):
            attempt ids start at 1, since it may have started attempt 0 of any task without
            leaving a trace on storage.
    """

    def __init__(
        self,
        query: Query,
        query_attempt: int,
        config: SchedulerConfig,
        storage: StorageSpec,
        manager: Any,
        executor: Executor,
        records: list[AttemptRecord],
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        emit: Callable[[SchedulerEvent], None],
        poll_interval: float,
        journal: QueryJournal | None = None,
        resume: bool = False,
        after_crash: bool = False,
    ) -> None:
        self._query = query
        self._qa = query_attempt
        self._config = config
        self._policy = config.retry
        self._storage = storage
        self._manager = manager
        self._executor = executor
        self._records = records
        self._clock = clock
        self._sleep = sleep
        self._emit_fn = emit
        self._poll = poll_interval
        self._final = query.final_stage
        self._stages = [
            _StageRun(s, [_Task(s, i) for i in range(s.task_count)]) for s in query.stages
        ]
        self._by_id = {s.stage.stage_id: s for s in self._stages}
        capacity = (
            manager.config.deduplication_buffer_size if manager is not None else _DEDUP_DEFAULT
        )
        self._journal = journal
        self._resume = resume
        if after_crash:
            for run in self._stages:
                for task in run.tasks:
                    task.next_attempt = 1
        self.tasks_reused = 0
        self.lineage_reruns = 0
        if resume and manager is not None:
            # The final stage's results lived in the dead coordinator: spilled ones go.
            self._discard_exchange(f"result-q{query_attempt}")
        self._dedup = DeduplicationBuffer(
            manager, query.query_id, f"result-q{query_attempt}", self._final.task_count, capacity
        )

    # ------------------------------------------------------------------ entry point

    def run(self) -> QueryResult:
        """Run every stage; returns the result or raises :class:`AttemptFailedError`.

        Whatever happens, running attempts are killed and every exchange of the attempt is
        closed before this returns.
        """
        self._emit("query-attempt")
        try:
            while not all(s.finished for s in self._stages):
                progressed = self._collect()
                progressed |= self._check_timeouts()
                progressed |= self._start_ready_stages()
                progressed |= self._launch_pending()
                progressed |= self._speculate()
                if self._journal is not None:
                    self._journal.flush()
                if not progressed:
                    self._sleep(self._idle_wait())
            rows = list(self._dedup.results())
            return QueryResult(
                query_id=self._query.query_id,
                rows=rows,
                attempts=self._records,
                query_attempts=self._qa + 1,
                bytes_spooled=sum(s.bytes_spooled for s in self._stages),
                bytes_stored=sum(s.stored for s in self._stages),
                result_bytes=sum(len(r) for r in rows),
                stage_bytes={s.stage.stage_id: (s.bytes_spooled, s.stored) for s in self._stages},
                resumed=self._resume and self.tasks_reused > 0,
                tasks_reused=self.tasks_reused,
                lineage_reruns=self.lineage_reruns,
            )
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for run in self._stages:
            for task in run.tasks:
                for running in task.running.values():
                    running.handle.kill()
        for run in self._stages:
            for task in run.tasks:
                for attempt_id, running in list(task.running.items()):
                    self._wait_dead(running)
                    self._record(task, attempt_id, running, "cancelled")
                task.running.clear()
        for run in self._stages:
            if run.exchange is not None:
                try:
                    run.exchange.close()
                except Exception:
                    _log.exception("could not close exchange of stage %s", run.stage.stage_id)
        self._dedup.close()

    # ------------------------------------------------------------------ helpers

    def _emit(
        self,
        kind: str,
        stage_id: str | None = None,
        task_id: int | None = None,
        attempt_id: int | None = None,
        detail: str = "",
    ) -> None:
        self._emit_fn(SchedulerEvent(kind, self._qa, stage_id, task_id, attempt_id, detail))

    def _record(
        self,
        task: _Task,
        attempt_id: int,
        running: _Running,
        status: str,
        outcome: TaskOutcome | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._records.append(
            AttemptRecord(
                query_attempt=self._qa,
                stage_id=task.stage.stage_id,
                task_id=task.task_id,
                attempt_id=attempt_id,
                status=status,
                speculative=running.speculative,
                delay=running.delay,
                error=str(error) if error is not None else "",
                bytes_written=outcome.bytes_written if outcome is not None else 0,
                duration=self._clock() - running.started,
            )
        )

    def _running_count(self) -> int:
        return sum(len(t.running) for s in self._stages for t in s.tasks)

    def _idle_wait(self) -> float:
        """A poll interval while attempts run, else until the earliest back-off ends."""
        if self._running_count():
            return self._poll
        waits = [
            t.not_before
            for s in self._stages
            if s.started and not s.finished
            for t in s.tasks
            if not t.finished and not t.running and t.failures
        ]
        if not waits:
            return self._poll
        return max(self._poll, min(waits) - self._clock())

    @staticmethod
    def _wait_dead(running: _Running) -> None:
        deadline = time.monotonic() + _KILL_WAIT
        while not running.handle.done() and time.monotonic() < deadline:
            time.sleep(0.005)

    # ------------------------------------------------------------------ stages and attempts

    def _start_ready_stages(self) -> bool:
        from exchange_store.exchange.handles import ExchangeContext

        progressed = False
        for run in self._stages:
            if run.started or not all(self._by_id[n].finished for n in run.stage.inputs):
                continue
            stage = run.stage
            self._emit("stage-started", stage.stage_id)
            run.started = True
            progressed = True
            if stage is self._final:
                continue
            exchange_id = f"{stage.stage_id}-q{self._qa}"
            context = ExchangeContext(self._query.query_id, exchange_id)
            run.exchange = self._open_exchange(context, stage) if self._resume else None
            if run.exchange is None:
                run.exchange = self._manager.create_exchange(
                    context,
                    output_partition_count=stage.output_partitions,
                    preserve_order=stage.preserve_order,
                )
            if self._journal is not None:
                self._journal.stage_started(stage.stage_id, exchange_id)
            for task in run.tasks:
                task.sink_handle = run.exchange.add_sink(task.task_id)
            run.exchange.no_more_sinks()
            self._reuse_finished(run)
        return progressed

    def _open_exchange(self, context: Any, stage: Stage) -> Any:
        """The stage's exchange left by an earlier coordinator, or None to create it anew."""
        try:
            exchange = self._manager.open_exchange(
                context,
                output_partition_count=stage.output_partitions,
                preserve_order=stage.preserve_order,
            )
        except InvalidArgumentError:  # none on storage (or not ours to take): a new one
            self._discard_exchange(context.exchange_id)
            return None
        except IntegrityError as exc:
            _log.warning("exchange %s cannot be reopened, its stage runs again: %s", context, exc)
            self._discard_exchange(context.exchange_id)
            return None
        if (exchange.output_partition_count, exchange.preserve_order) != (
            stage.output_partitions,
            stage.preserve_order,
        ):
            _log.warning("exchange %s has another shape than stage %s", context, stage.stage_id)
            exchange.close()
            return None
        return exchange

    def _discard_exchange(self, exchange_id: str) -> None:
        """Delete what an earlier coordinator left of one exchange of this query."""
        from exchange_store.exchange.handles import ExchangeContext

        self._manager.discard_exchange(ExchangeContext(self._query.query_id, exchange_id))

    def _reuse_finished(self, run: _StageRun) -> None:
        """Mark the tasks whose committed output a reopened exchange holds as finished."""
        used = run.exchange.attempts_used()
        selected = run.exchange.selected_attempts()
        for task in run.tasks:
            task.next_attempt = max(task.next_attempt, used.get(task.task_id, -1) + 1)
            attempt = selected.get(task.task_id)
            if attempt is None:
                continue
            task.finished = True
            self.tasks_reused += 1
            if self._journal is not None:
                self._journal.task_finished(run.stage.stage_id, task.task_id, attempt)
            self._emit("task-reused", run.stage.stage_id, task.task_id, attempt)
        if all(t.finished for t in run.tasks):
            self._stage_done(run)

    def _launch(self, run: _StageRun, task: _Task, *, speculative: bool) -> None:
        stage = run.stage
        attempt_id = task.next_attempt
        task.next_attempt += 1
        instance = None
        if stage is not self._final:
            instance = run.exchange.instantiate_sink(task.sink_handle, attempt_id)
        inputs = []
        for name in stage.inputs:
            # Task t of a stage with n tasks reads the upstream partitions p with p % n == t.
            mine = tuple(
                h
                for h in self._by_id[name].handles
                if h.partition_id % stage.task_count == task.task_id
            )
            inputs.append((name, mine))
        spec = TaskSpec(
            query_id=self._query.query_id,
            query_attempt=self._qa,
            stage_id=stage.stage_id,
            task_id=task.task_id,
            attempt_id=attempt_id,
            task_count=stage.task_count,
            task=stage.task,
            storage=self._storage,
            sink_instance=instance,
            output_partition_count=1 if stage is self._final else stage.output_partitions,
            inputs=tuple(inputs),
        )
        handle = self._executor.submit(spec)
        delay = 0.0 if speculative else task.next_delay
        task.running[attempt_id] = _Running(attempt_id, handle, self._clock(), speculative, delay)
        task.runs += 1
        self._emit(
            "attempt-started",
            stage.stage_id,
            task.task_id,
            attempt_id,
            "speculative" if speculative else "",
        )

    def _inputs_ready(self, run: _StageRun) -> bool:
        """Whether every input stage is finished (again, after lost output was re-run)."""
        return all(self._by_id[n].finished for n in run.stage.inputs)

    def _launch_pending(self) -> bool:
        free = self._executor.slots - self._running_count()
        progressed = False
        for run in self._stages:
            if not run.started or run.finished or not self._inputs_ready(run):
                continue
            for task in run.tasks:
                if free <= 0:
                    return progressed
                if task.finished or task.running or task.runs >= self._policy.max_task_runs:
                    continue
                if task.failures and self._clock() < task.not_before:
                    continue
                self._launch(run, task, speculative=False)
                free -= 1
                progressed = True
        return progressed

    def _speculate(self) -> bool:
        """Duplicate tasks running longer than the threshold once half their stage is done."""
        if not self._config.speculation_enabled:
            return False
        free = self._executor.slots - self._running_count()
        now = self._clock()
        progressed = False
        for run in self._stages:
            if (
                not run.started
                or run.finished
                or run.done_fraction() < 0.5
                or not self._inputs_ready(run)
            ):
                continue
            for task in run.tasks:
                if free <= 0:
                    return progressed
                if task.finished or task.speculated or len(task.running) != 1:
                    continue
                (only,) = task.running.values()
                if now - only.started < self._config.slow_task_threshold:
                    continue
                task.speculated = True
                self._launch(run, task, speculative=True)
                free -= 1
                progressed = True
        return progressed

    # ------------------------------------------------------------------ outcomes

    def _collect(self) -> bool:
        progressed = False
        for run in self._stages:
            for task in run.tasks:
                for attempt_id, running in list(task.running.items()):
                    if attempt_id not in task.running or not running.handle.done():
                        continue
                    progressed = True
                    outcome = running.handle.outcome()
                    del task.running[attempt_id]
                    if outcome.ok and not task.finished:
                        self._record(task, attempt_id, running, "finished", outcome)
                        self._emit("attempt-finished", run.stage.stage_id, task.task_id, attempt_id)
                        try:
                            self._succeed(run, task, attempt_id, outcome)
                        except Exception as exc:  # the coordinator's side of the commit
                            raise AttemptFailedError(
                                run.stage.stage_id, task.task_id, task.runs, exc
                            ) from exc
                    elif outcome.ok:
                        self._record(task, attempt_id, running, "duplicate", outcome)
                    else:
                        error = outcome.error or RuntimeError("attempt failed")
                        self._record(task, attempt_id, running, "failed", outcome, error)
                        self._emit(
                            "attempt-failed",
                            run.stage.stage_id,
                            task.task_id,
                            attempt_id,
                            str(error),
                        )
                        if task.finished:
                            continue
                        if self._recover_lost(run, task, error):
                            continue
                        self._fail(task, error)
        return progressed

    def _recover_lost(self, run: _StageRun, task: _Task, error: BaseException) -> bool:
        """Lineage: re-run the producers of the lost input ``error`` names, then ``task``.

        Returns:
            False when ``error`` names no lost output of this query attempt's exchanges (the
            failure is then handled as any other).

        Raises:
            AttemptFailedError: retries ran out (of the reader or of a producer), or the
                policy is not TASK.
        """
        lost = getattr(error, "lost", ())
        by_exchange = {
            r.exchange.context.exchange_id: r for r in self._stages if r.exchange is not None
        }
        mine = [
            (by_exchange[e], tp, a)
            for q, e, tp, a in lost
            if q == self._query.query_id and e in by_exchange and tp < len(by_exchange[e].tasks)
        ]
        if not mine:
            return False
        stage_id = run.stage.stage_id
        if self._policy.kind != "TASK":
            raise AttemptFailedError(stage_id, task.task_id, task.runs, error)
        for upstream, tp, attempt in mine:
            producer = upstream.tasks[tp]
            if not upstream.exchange.sink_lost(producer.sink_handle, attempt):
                continue  # already re-run for an earlier reader
            if producer.runs >= self._policy.max_task_runs:
                raise AttemptFailedError(upstream.stage.stage_id, tp, producer.runs, error)
            producer.finished = False
            producer.failures += 1
            producer.not_before = self._clock()
            upstream.finished = False
            upstream.handles = []
            self.lineage_reruns += 1
            if self._journal is not None:
                self._journal.task_lost(upstream.stage.stage_id, tp)
                self._journal.flush(force=True)
            self._emit("task-lost", upstream.stage.stage_id, tp, attempt, str(error))
        task.failures += 1
        if not task.running and task.runs >= self._policy.max_task_runs:
            raise AttemptFailedError(stage_id, task.task_id, task.runs, error)
        task.next_delay = 0.0
        task.not_before = self._clock()
        return True

    def _check_timeouts(self) -> bool:
        timeout = self._config.task_timeout
        if timeout is None:
            return False
        now = self._clock()
        progressed = False
        for run in self._stages:
            for task in run.tasks:
                for attempt_id, running in list(task.running.items()):
                    if attempt_id not in task.running or now - running.started <= timeout:
                        continue
                    progressed = True
                    running.handle.kill()
                    self._wait_dead(running)
                    del task.running[attempt_id]
                    error = TaskTimeoutError(
                        f"task {run.stage.stage_id}/{task.task_id} attempt {attempt_id} ran "
                        f"longer than task.timeout={timeout:g}s and was killed"
                    )
                    self._record(task, attempt_id, running, "failed", None, error)
                    self._emit(
                        "attempt-failed", run.stage.stage_id, task.task_id, attempt_id, str(error)
                    )
                    if not task.finished:
                        self._fail(task, error)
        return progressed

    def _fail(self, task: _Task, error: BaseException) -> None:
        """Schedule a retry of ``task`` or fail the query attempt."""
        task.failures += 1
        retryable = is_retryable(error)
        if task.running:
            if retryable:
                return  # a speculative copy is still running and may finish
            raise AttemptFailedError(task.stage.stage_id, task.task_id, task.runs, error)
        if self._policy.kind != "TASK" or not retryable or task.runs >= self._policy.max_task_runs:
            raise AttemptFailedError(task.stage.stage_id, task.task_id, task.runs, error)
        task.next_delay = self._policy.delay(task.failures - 1)
        task.not_before = self._clock() + task.next_delay

    def _succeed(self, run: _StageRun, task: _Task, attempt_id: int, outcome: TaskOutcome) -> None:
        """Report the first finished attempt of ``task``; kill its other attempts."""
        task.finished = True
        if outcome.reused:
            self.tasks_reused += 1
        if run.stage is self._final:
            self._dedup.add(task.task_id, outcome.results)
        else:
            run.exchange.sink_finished(task.sink_handle, attempt_id, outcome.receipt)
            run.bytes_spooled += outcome.bytes_written
            if self._journal is not None:
                self._journal.task_finished(run.stage.stage_id, task.task_id, attempt_id)
        for other_id, other in list(task.running.items()):
            other.handle.kill()
            self._wait_dead(other)
            del task.running[other_id]
            self._record(task, other_id, other, "killed")
            self._emit("attempt-killed", run.stage.stage_id, task.task_id, other_id)
        if all(t.finished for t in run.tasks):
            self._stage_done(run)

    def _stage_done(self, run: _StageRun) -> None:
        if run.exchange is not None:
            run.exchange.all_required_sinks_finished()
            run.handles = list(run.exchange.get_source_handles())
        run.finished = True
        if self._journal is not None:
            self._journal.flush(force=True)
        self._emit("stage-finished", run.stage.stage_id)
