"""What a query run reports: progress events, per-attempt records and the result."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AttemptRecord", "QueryResult", "SchedulerEvent"]


@dataclass(frozen=True, slots=True)
class SchedulerEvent:
    """Progress, for a listener (the demo's progress bar).

    Attributes:
        kind: ``query-attempt``, ``stage-started``, ``attempt-started``,
            ``attempt-finished``, ``attempt-failed``, ``attempt-killed``, ``stage-finished``,
            ``task-reused`` (a resumed query found the task's committed output),
            ``task-lost`` (a finished task's output was found lost; it runs again).
        query_attempt: The run of the query.
        stage_id: The stage, when the event is about one.
        task_id: The task, when about one.
        attempt_id: The attempt, when about one.
        detail: Free text (the error, "speculative").
    """

    kind: str
    query_attempt: int
    stage_id: str | None = None
    task_id: int | None = None
    attempt_id: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One task attempt that ran.

    Attributes:
        query_attempt: The run of the query.
        stage_id: The stage.
        task_id: The task.
        attempt_id: The attempt.
        status: ``finished`` (selected), ``duplicate`` (finished after another attempt),
            ``failed``, ``killed`` (lost to a speculative copy), ``cancelled`` (still running
            when its query attempt ended).
        speculative: Whether started as a speculative copy.
        delay: Back-off waited before it started.
        error: The failure text, if any.
        bytes_written: Bytes the attempt added to its sink.
        duration: Seconds, start to end as seen by the coordinator.
    """

    query_attempt: int
    stage_id: str
    task_id: int
    attempt_id: int
    status: str
    speculative: bool = False
    delay: float = 0.0
    error: str = ""
    bytes_written: int = 0
    duration: float = 0.0


@dataclass(slots=True)
class QueryResult:
    """What a query run produced.

    Attributes:
        query_id: The query.
        rows: The final stage's records, task partition by task partition.
        attempts: Every attempt that ran.
        query_attempts: Runs of the whole query.
        bytes_spooled: Bytes the selected attempts wrote into exchanges (before compression).
        bytes_stored: Bytes those exchanges held on storage.
        result_bytes: Bytes of result records.
        wall_time: Seconds for the whole run.
        stage_bytes: Stage id to (bytes spooled, bytes stored).
        resumed: Whether the run went on from what an earlier coordinator of the same query
            id left on storage (its journal, or committed exchanges).
        tasks_reused: Tasks not run because their committed output was found on storage.
        lineage_reruns: Finished tasks run again because a reader found their output lost.
    """

    query_id: str
    rows: list[bytes]
    attempts: list[AttemptRecord]
    query_attempts: int
    bytes_spooled: int = 0
    bytes_stored: int = 0
    result_bytes: int = 0
    wall_time: float = 0.0
    stage_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)
    resumed: bool = False
    tasks_reused: int = 0
    lineage_reruns: int = 0

    def runs(self, stage_id: str | None = None, task_id: int | None = None) -> int:
        """Attempts started, optionally of one stage or task."""
        return sum(
            1
            for a in self.attempts
            if (stage_id is None or a.stage_id == stage_id)
            and (task_id is None or a.task_id == task_id)
        )

    def runs_by_task(self) -> dict[tuple[str, int], int]:
        """Attempts started per (stage, task)."""
        out: dict[tuple[str, int], int] = {}
        for a in self.attempts:
            out[a.stage_id, a.task_id] = out.get((a.stage_id, a.task_id), 0) + 1
        return out

    @property
    def retries(self) -> int:
        """Attempts beyond the first of each task (retries and speculative copies)."""
        return len(self.attempts) - len(
            {(a.query_attempt, a.stage_id, a.task_id) for a in self.attempts}
        )
