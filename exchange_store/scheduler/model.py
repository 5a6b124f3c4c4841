"""The query model: a DAG of stages, each a number of tasks, and what a task sees.

A :class:`Query` is a list of :class:`Stage` in topological order; the last stage is the
*final* stage, whose tasks write result records returned to the caller. Every other stage
writes into its own exchange with ``output_partitions`` partitions; a downstream task number
``t`` of a stage with ``n`` tasks reads the partitions ``p`` with ``p % n == t`` of every input
stage (so ``n == output_partitions`` is a hash exchange, ``n == 1`` a gather).

A task is a picklable callable (a module-level function or a picklable object) called with a
:class:`TaskContext`; whatever it raises fails the attempt.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.ids import check_id

if TYPE_CHECKING:
    from exchange_store.scheduler.retry import RemoteTaskError

__all__ = [
    "CancelFlag",
    "Query",
    "RecordSink",
    "RecordSource",
    "ResultSink",
    "Stage",
    "StorageSpec",
    "TaskContext",
    "TaskFunction",
    "TaskOutcome",
    "TaskSpec",
    "TaskState",
    "snapshot_job_id",
]


class CancelFlag(Protocol):
    """Tells a running attempt that the coordinator gave up on it (``threading.Event`` fits)."""

    def is_set(self) -> bool:
        """Whether the attempt should stop."""


class RecordSink(Protocol):
    """What a task writes to: an ExchangeSink or a :class:`ResultSink`."""

    def add(self, partition_id: int, data: bytes | bytearray | memoryview) -> None:
        """Append one record to ``partition_id``."""


class RecordSource(Protocol):
    """What a task reads from: an ExchangeSource."""

    def __iter__(self) -> Any:
        """Iterate the records."""

    def read(self) -> bytes | None:
        """One record, or None when nothing is ready."""


TaskFunction = Callable[["TaskContext"], None]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a query.

    Attributes:
        stage_id: The stage's id (``[A-Za-z0-9_-]``), unique in the query.
        task: Called once per task attempt with a :class:`TaskContext`; must pickle.
        task_count: How many tasks (task partitions) the stage runs.
        inputs: Ids of the upstream stages this stage reads, in the order of
            :attr:`TaskContext.sources`.
        output_partitions: Partitions of the stage's exchange (ignored for the final stage).
        preserve_order: Whether the stage's exchange keeps records in write order.
    """

    stage_id: str
    task: TaskFunction
    task_count: int = 1
    inputs: tuple[str, ...] = ()
    output_partitions: int = 1
    preserve_order: bool = False

    def __post_init__(self) -> None:
        check_id(self.stage_id, "stage_id")
        if self.task_count < 1:
            raise InvalidArgumentError(f"stage {self.stage_id}: task_count must be >= 1")
        if self.output_partitions < 1:
            raise InvalidArgumentError(f"stage {self.stage_id}: output_partitions must be >= 1")
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True, slots=True)
class Query:
    """A DAG of stages; the last one is the final stage.

    Raises:
        InvalidArgumentError: duplicate stage ids, an input that is not an earlier stage, or a
            non-final stage that no stage reads.
    """

    query_id: str
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        check_id(self.query_id, "query_id")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise InvalidArgumentError(f"query {self.query_id} has no stages")
        seen: set[str] = set()
        read: set[str] = set()
        for stage in self.stages:
            if stage.stage_id in seen:
                raise InvalidArgumentError(
                    f"query {self.query_id}: stage id {stage.stage_id!r} used twice"
                )
            for name in stage.inputs:
                if name not in seen:
                    raise InvalidArgumentError(
                        f"query {self.query_id}: stage {stage.stage_id} reads {name!r}, "
                        "which is not an earlier stage"
                    )
            read.update(stage.inputs)
            seen.add(stage.stage_id)
        unread = [s.stage_id for s in self.stages[:-1] if s.stage_id not in read]
        if unread:
            raise InvalidArgumentError(
                f"query {self.query_id}: stages {unread} are read by no stage; only the last "
                "stage may be final"
            )

    @property
    def final_stage(self) -> Stage:
        """The stage whose output is the query's result."""
        return self.stages[-1]

    def stage(self, stage_id: str) -> Stage:
        """The stage named ``stage_id``."""
        for stage in self.stages:
            if stage.stage_id == stage_id:
                return stage
        raise InvalidArgumentError(f"query {self.query_id} has no stage {stage_id!r}")


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """How a worker rebuilds the exchange manager and the snapshot store.

    Either an etc directory (``etc_dir``), or properties dicts. ``cwd`` is the directory
    relative base directories are resolved against (the coordinator's current directory).

    Attributes:
        etc_dir: Absolute path of an etc directory, or None.
        exchange_properties: ``exchange-manager.properties`` values, when no etc dir.
        exchange_filesystems: Filesystem client properties by name.
        snapshot_properties: ``snapshot-store.properties`` values, when no etc dir.
        snapshot_filesystems: Filesystem client properties by name for the snapshot store.
        snapshot_key: The snapshot encryption key with ``snapshot_properties``. Never shown.
        cwd: The coordinator's working directory.
    """

    etc_dir: str | None = None
    exchange_properties: Mapping[str, str] | None = None
    exchange_filesystems: Mapping[str, Mapping[str, str]] | None = None
    snapshot_properties: Mapping[str, str] | None = None
    snapshot_filesystems: Mapping[str, Mapping[str, str]] | None = None
    snapshot_key: bytes | None = field(default=None, repr=False)
    cwd: str = field(default_factory=os.getcwd)

    @classmethod
    def from_etc(cls, etc_dir: str | os.PathLike[str] = "etc") -> StorageSpec:
        """Workers read the same etc directory (resolved to an absolute path now)."""
        path = os.path.abspath(os.fspath(etc_dir))
        if not os.path.isdir(path):
            raise ConfigurationError(f"{path}: configuration directory not found")
        return cls(etc_dir=path)

    @property
    def has_exchange_manager(self) -> bool:
        """Whether an exchange manager is configured."""
        return self._configured(self.exchange_properties, "exchange-manager.properties")

    @property
    def has_snapshot_store(self) -> bool:
        """Whether a snapshot store is configured."""
        return self._configured(self.snapshot_properties, "snapshot-store.properties")

    def _configured(self, properties: object, file_name: str) -> bool:
        """Properties given directly, or ``file_name`` present in the etc directory."""
        if properties is not None:
            return True
        return self.etc_dir is not None and os.path.isfile(os.path.join(self.etc_dir, file_name))


def snapshot_job_id(query_id: str, query_attempt: int, stage_id: str, task_id: int) -> str:
    """The snapshot-store job holding one task's saved state in one query attempt."""
    job = f"{query_id}-q{query_attempt}-{stage_id}-{task_id}"
    if len(job) <= 128:
        return job
    digest = hashlib.sha256(job.encode()).hexdigest()[:32]
    return f"{query_id[:60]}-{digest}-{task_id}"


class TaskState(Protocol):
    """Saved state of one task, surviving its attempts (a snapshot-store job)."""

    def save(self, data: bytes) -> None:
        """Replace the task's saved state."""

    def restore(self) -> bytes | None:
        """The last saved state, or None."""


class ResultSink:
    """Collects the final stage's records in the worker; they travel back with the outcome."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self._size = 0
        self._closed = False

    def add(self, partition_id: int, data: bytes | bytearray | memoryview) -> None:
        """Append a result record; the final stage has one output partition, 0."""
        if partition_id != 0:
            raise InvalidArgumentError(
                f"the final stage writes result partition 0, not {partition_id}"
            )
        if self._closed:
            return
        record = bytes(data)
        self.records.append(record)
        self._size += len(record)

    @property
    def memory_usage(self) -> int:
        """Bytes held."""
        return self._size

    def finish(self) -> None:
        """Nothing to commit: the records go back to the coordinator."""
        self._closed = True

    def abort(self) -> None:
        """Drop the records."""
        self._closed = True
        self.records = []
        self._size = 0


@dataclass(slots=True)
class TaskContext:
    """What a task attempt sees.

    Attributes:
        query_id: The query.
        query_attempt: Which run of the whole query (0 unless retry-policy=QUERY retried it).
        stage_id: The stage.
        task_id: The task partition, ``0 .. task_count - 1``.
        attempt_id: The attempt of this task (0 first; retries and speculative copies count up).
        task_count: Tasks of this stage.
        output_partition_count: Valid ``partition_id`` values for :attr:`sink`.
        sources: One source per input stage, in the order of ``Stage.inputs``.
        inputs: The same sources by upstream stage id.
        sink: Where the task writes (an ExchangeSink, or the result sink of the final stage).
        state: Saved state across attempts, or None without a snapshot store.
        cancel_event: Set when the coordinator gave up on this attempt (threads and Dask
            executors; a process is killed instead).
    """

    query_id: str
    query_attempt: int
    stage_id: str
    task_id: int
    attempt_id: int
    task_count: int
    output_partition_count: int
    sources: list[Any]
    inputs: dict[str, Any]
    sink: Any
    state: TaskState | None = None
    cancel_event: CancelFlag | None = None

    def save_state(self, data: bytes) -> None:
        """Save the task's progress; a retried attempt gets it from :meth:`restore_state`.

        Raises:
            ConfigurationError: no snapshot store is configured.
        """
        if self.state is None:
            raise ConfigurationError(
                "save_state needs a snapshot store: configure etc/snapshot-store.properties"
            )
        self.state.save(data)

    def restore_state(self) -> bytes | None:
        """The state saved by an earlier attempt of this task, or None."""
        if self.state is None:
            return None
        return self.state.restore()

    @property
    def cancelled(self) -> bool:
        """Whether the coordinator gave up on this attempt (a speculative loser)."""
        return self.cancel_event is not None and self.cancel_event.is_set()


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task attempt, as sent to a worker (picklable).

    Attributes:
        query_id: The query.
        query_attempt: The run of the query.
        stage_id: The stage.
        task_id: The task partition.
        attempt_id: The attempt.
        task_count: Tasks of the stage.
        task: The task callable.
        storage: How to rebuild the exchange manager and snapshot store.
        sink_instance: Where to write (ExchangeSinkInstanceHandle), None for the final stage.
        output_partition_count: Partitions of the output.
        inputs: Upstream stage id and the source handles this task reads from it.
    """

    query_id: str
    query_attempt: int
    stage_id: str
    task_id: int
    attempt_id: int
    task_count: int
    task: TaskFunction
    storage: StorageSpec
    sink_instance: Any
    output_partition_count: int
    inputs: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def name(self) -> str:
        """``stage/task.attempt`` for messages."""
        return f"{self.stage_id}/{self.task_id}.{self.attempt_id}"


@dataclass(slots=True)
class TaskOutcome:
    """What an attempt reports back.

    Attributes:
        ok: Whether the attempt committed.
        error: The failure, None on success.
        results: Result records (final stage only).
        records_written: Records added to the sink.
        bytes_written: Bytes added to the sink (before compression).
        duration: Seconds the task ran in the worker.
        receipt: The exchange sink's receipt (an ``ExchangeSinkReceipt``), when it wrote one.
        reused: The attempt was already committed by an earlier run of the same instance, so
            its work was skipped.
    """

    ok: bool
    error: RemoteTaskError | BaseException | None = None
    results: list[bytes] = field(default_factory=list)
    records_written: int = 0
    bytes_written: int = 0
    duration: float = 0.0
    receipt: Any = None
    reused: bool = False
