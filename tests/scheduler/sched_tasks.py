"""Task functions for the scheduler tests (importable by worker processes).

Each task appends a line to ``runs.log`` in its ``log_dir`` when it starts, so a test counts
real runs in every executor, killed processes included.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from exchange_store.errors import StorageError, UserError
from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.retry import RetryPolicy


def log_run(log_dir: str, ctx) -> None:
    with open(os.path.join(log_dir, "runs.log"), "a") as f:
        f.write(
            f"{ctx.query_attempt} {ctx.stage_id} {ctx.task_id} {ctx.attempt_id} {os.getpid()}\n"
        )


def read_runs(log_dir: str, *, pids: bool = False) -> list[tuple]:
    path = os.path.join(log_dir, "runs.log")
    if not os.path.exists(path):
        return []
    out: list[tuple] = []
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        q, s, t, a, pid = line.split()
        out.append((int(q), s, int(t), int(a), int(pid)) if pids else (int(q), s, int(t), int(a)))
    return out


@dataclass(frozen=True)
class Gen:
    """Writes the numbers task*per .. task*per+per-1, hashed by value into the partitions."""

    log_dir: str
    per: int = 100
    # (stage, task, attempt, query_attempt) -> kind: storage | user | kill | slow | error
    faults: dict = field(default_factory=dict)

    def fault(self, ctx) -> None:
        kind = self.faults.get((ctx.stage_id, ctx.task_id, ctx.attempt_id, ctx.query_attempt))
        kind = kind or self.faults.get((ctx.stage_id, ctx.task_id, "*", ctx.query_attempt))
        if kind == "storage":
            raise StorageError(f"injected storage failure in {ctx.stage_id}/{ctx.task_id}")
        if kind == "user":
            raise UserError(f"bad input row in {ctx.stage_id}/{ctx.task_id}")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "slow":
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not ctx.cancelled:
                time.sleep(0.01)
        if kind == "error":
            raise ValueError("internal error")

    def __call__(self, ctx) -> None:
        log_run(self.log_dir, ctx)
        for i in range(self.per):
            v = ctx.task_id * self.per + i
            ctx.sink.add(v % ctx.output_partition_count, str(v).encode())
            if i == self.per // 2:
                self.fault(ctx)


@dataclass(frozen=True)
class Sum:
    """Sums its input records; writes ``sum`` (and the attempt id when tag is set)."""

    log_dir: str
    faults: dict = field(default_factory=dict)
    tag: bool = False

    def __call__(self, ctx) -> None:
        log_run(self.log_dir, ctx)
        total = 0
        for source in ctx.sources:
            for record in source:
                total += int(record.split(b":")[0])
        Gen(self.log_dir, faults=self.faults).fault(ctx)
        out = f"{total}:{ctx.attempt_id}" if self.tag else str(total)
        ctx.sink.add(0, out.encode())


@dataclass(frozen=True)
class Tags:
    """Final stage: returns every input record as is."""

    log_dir: str

    def __call__(self, ctx) -> None:
        log_run(self.log_dir, ctx)
        for source in ctx.sources:
            for record in sorted(source):
                ctx.sink.add(0, record)


@dataclass(frozen=True)
class Resumable:
    """Saves its progress, fails once, and on the retry reports what it restored."""

    log_dir: str

    def __call__(self, ctx) -> None:
        log_run(self.log_dir, ctx)
        restored = ctx.restore_state()
        if ctx.attempt_id == 0:
            ctx.save_state(b"step-1")
            ctx.save_state(b"step-2")
            raise StorageError("injected failure after saving step-2")
        ctx.sink.add(0, b"restored=" + (restored or b"none"))


def files_under(*roots: Path) -> list[str]:
    out = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            out.extend(os.path.join(dirpath, n) for n in names)
    return out


def config(kind: str = "TASK", executor: str = "threads", **changes: object) -> SchedulerConfig:
    retry = RetryPolicy(
        kind,  # type: ignore[arg-type]
        query_retry_attempts=int(changes.pop("query_retry_attempts", 4)),  # type: ignore[call-overload]
        task_retry_attempts_per_task=int(changes.pop("task_retries", 4)),  # type: ignore[call-overload]
        initial_delay=float(changes.pop("initial_delay", 0.001)),  # type: ignore[arg-type]
        max_delay=float(changes.pop("max_delay", 0.01)),  # type: ignore[arg-type]
        scale_factor=2.0,
    )
    return SchedulerConfig(retry=retry, executor_type=executor, workers=2).replace(**changes)


@dataclass(frozen=True)
class Steps:
    """A long task: ``steps`` steps of ``pause`` seconds, saving its progress after each.

    Writes ``start=<step it began at>`` so a test sees where a resumed attempt started.
    """

    steps: int = 20
    pause: float = 0.1

    def __call__(self, ctx) -> None:
        saved = ctx.restore_state()
        start = int(saved) if saved else 0
        for step in range(start, self.steps):
            time.sleep(self.pause)
            ctx.save_state(str(step + 1).encode())
        ctx.sink.add(0, b"start=%d" % start)
