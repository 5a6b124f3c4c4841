"""The scheduler's configuration: ``etc/config.properties``.

Key names follow Trino's fault-tolerant execution (``retry-policy``, ``query-retry-attempts``,
``task-retry-attempts-per-task``, ``retry-initial-delay``, ``retry-max-delay``,
``retry-delay-scale-factor``); openLooKeng's ``task-initial-delay``/``task-max-delay`` are
accepted as aliases. The ``executor.*``, ``task.*`` and ``speculation.*`` keys are ours.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exchange_store.config import Key, Schema, load_etc
from exchange_store.errors import ConfigurationError
from exchange_store.scheduler.retry import RetryPolicy

__all__ = ["EXECUTOR_TYPES", "RETRY_POLICIES", "SCHEDULER_SCHEMA", "SchedulerConfig"]

RETRY_POLICIES = ("NONE", "QUERY", "TASK")
EXECUTOR_TYPES = ("threads", "processes", "dask")

SCHEDULER_SCHEMA = Schema(
    "config.properties",
    [
        Key(
            "retry-policy",
            "enum",
            "NONE",
            choices=RETRY_POLICIES,
            doc="NONE fails a query on its first failure; QUERY re-runs the whole query; "
            "TASK re-runs only the failed task.",
        ),
        Key(
            "query-retry-attempts",
            "int",
            4,
            minimum=0,
            doc="Retries of a whole query under retry-policy=QUERY.",
        ),
        Key(
            "task-retry-attempts-per-task",
            "int",
            4,
            minimum=0,
            doc="Retries of one task under retry-policy=TASK (so up to this + 1 runs).",
        ),
        Key(
            "retry-initial-delay",
            "duration",
            10.0,
            minimum=0.0,
            aliases=("task-initial-delay",),
            doc="Back-off before the first retry.",
        ),
        Key(
            "retry-max-delay",
            "duration",
            60.0,
            minimum=0.0,
            aliases=("task-max-delay",),
            doc="Longest back-off between retries.",
        ),
        Key(
            "retry-delay-scale-factor",
            "float",
            2.0,
            minimum=1.0,
            doc="Each further retry waits this many times longer (capped at retry-max-delay).",
        ),
        Key(
            "executor.type",
            "enum",
            "processes",
            choices=EXECUTOR_TYPES,
            doc="Where tasks run: threads, processes (one process per task attempt) or dask.",
        ),
        Key(
            "executor.workers",
            "int",
            None,
            minimum=1,
            doc="Task attempts running at once (default: the CPU count).",
        ),
        Key(
            "executor.dask-scheduler-address",
            "string",
            None,
            doc="Address of a Dask distributed scheduler (tcp://host:8786); default: a "
            "LocalCluster started for the run.",
        ),
        Key(
            "task.timeout",
            "duration",
            None,
            minimum=0.001,
            doc="A task attempt running longer is killed and counts as a retryable failure "
            "(default: no limit).",
        ),
        Key(
            "speculation.enabled",
            "bool",
            False,
            doc="Start a second attempt of a slow task; the first to finish wins.",
        ),
        Key(
            "speculation.slow-task-threshold",
            "duration",
            10.0,
            minimum=0.0,
            doc="A task counts as slow once it runs this long and half its stage is done.",
        ),
    ],
)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Typed ``config.properties``.

    Attributes:
        retry: The retry policy and its back-off.
        executor_type: threads, processes or dask.
        workers: Task attempts running at once.
        dask_scheduler_address: Dask scheduler to connect to, or None for a LocalCluster.
        task_timeout: Seconds after which an attempt is killed, or None.
        speculation_enabled: Whether slow tasks get a speculative duplicate.
        slow_task_threshold: Seconds after which a task counts as slow.
        source: Where the configuration came from.
    """

    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    executor_type: str = "processes"
    workers: int = 1
    dask_scheduler_address: str | None = None
    task_timeout: float | None = None
    speculation_enabled: bool = False
    slow_task_threshold: float = 10.0
    source: str = "<properties>"

    @classmethod
    def from_properties(
        cls,
        values: Mapping[str, str],
        source: str = "<properties>",
        lines: Mapping[str, int] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> SchedulerConfig:
        """Validate the raw keys of ``config.properties``.

        Raises:
            ConfigurationError: unknown key, bad value; names the file, the key and what is
                allowed.
        """
        p: dict[str, Any] = SCHEDULER_SCHEMA.parse(values, source, lines, origins)
        retry = RetryPolicy(
            kind=p["retry-policy"],
            query_retry_attempts=p["query-retry-attempts"],
            task_retry_attempts_per_task=p["task-retry-attempts-per-task"],
            initial_delay=p["retry-initial-delay"],
            max_delay=p["retry-max-delay"],
            scale_factor=p["retry-delay-scale-factor"],
        )
        return cls(
            retry=retry,
            executor_type=p["executor.type"],
            workers=p["executor.workers"] or os.cpu_count() or 1,
            dask_scheduler_address=p["executor.dask-scheduler-address"] or None,
            task_timeout=p["task.timeout"],
            speculation_enabled=p["speculation.enabled"],
            slow_task_threshold=p["speculation.slow-task-threshold"],
            source=source,
        )

    @classmethod
    def from_etc(cls, etc_dir: str | os.PathLike[str] = "etc") -> SchedulerConfig:
        """Read ``etc/config.properties``; every key takes its default when the file is absent.

        Raises:
            ConfigurationError: the directory is missing or the file is invalid.
        """
        etc = load_etc(etc_dir)
        pf = etc.scheduler
        if pf is None:
            return cls.from_properties({}, source=str(etc.root / "config.properties"))
        return cls.from_properties(pf.values, pf.path, pf.lines, pf.origins)

    def replace(self, **changes: Any) -> SchedulerConfig:
        """A copy with some fields changed (``retry=...``, ``executor_type=...``)."""
        if "executor_type" in changes and changes["executor_type"] not in EXECUTOR_TYPES:
            raise ConfigurationError(
                f"executor type {changes['executor_type']!r}: allowed: {' | '.join(EXECUTOR_TYPES)}"
            )
        return dataclasses.replace(self, **changes)
