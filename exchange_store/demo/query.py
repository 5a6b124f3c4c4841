"""The demo query: a three-stage distributed aggregation over generated lineitem-like rows.

Stage ``scan`` (one task per split) generates its split's rows chunk by chunk, aggregates them
partially by ``suppkey`` and hash-partitions the partial aggregates into the exchange. After
each chunk it saves its progress (chunk number and partial aggregate) through the task snapshot
facade, so a retried attempt resumes where the killed one left off. Stage ``final`` (one task
per partition) merges the partial aggregates; stage ``collect`` orders the groups and returns
them. :func:`reference_result` computes the same answer in one process with pyarrow.

Failures are injected by a :class:`FailurePlan` into the first attempt of the first query run
only, so every policy but NONE recovers: ``kill`` SIGKILLs the worker mid-task, ``storage``
raises a transient StorageError, ``slow`` sleeps (cancellable) so speculation can kick in,
``user`` raises a UserError (never retried).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from exchange_store.arrow import batch_to_bytes, bytes_to_batches, read_batches, write_batch
from exchange_store.errors import TransientStorageError, UserError
from exchange_store.scheduler.model import Query, Stage, TaskContext
from exchange_store.scheduler.retry import WorkerCrashedError

__all__ = [
    "FAILURE_KINDS",
    "DemoSpec",
    "FailurePlan",
    "build_demo_query",
    "collect_result",
    "make_failure_plan",
    "reference_result",
]

FAILURE_KINDS = ("kill", "storage", "slow", "user")
KEY = "suppkey"
_AGGS = [("quantity", "sum"), ("price", "sum"), ("disc_price", "sum"), ("rows", "sum")]
RESULT_SCHEMA = pa.schema(
    [
        (KEY, pa.int64()),
        ("sum_qty", pa.int64()),
        ("sum_price", pa.int64()),
        ("sum_disc_price", pa.int64()),
        ("count_order", pa.int64()),
    ]
)
_BATCH_ROWS = 64 * 1024


@dataclass(frozen=True, slots=True)
class DemoSpec:
    """Size and shape of the demo data.

    Attributes:
        rows: Total generated rows.
        splits: Scan tasks.
        partitions: Final-aggregate tasks (exchange partitions of the scan stage).
        chunks: Chunks per split (a progress snapshot after each).
        groups: Distinct ``suppkey`` values.
        seed: Seed of the data.
    """

    rows: int = 2_000_000
    splits: int = 8
    partitions: int = 4
    chunks: int = 4
    groups: int = 50_000
    seed: int = 42

    def split_rows(self, split: int) -> int:
        """Rows of one split."""
        base, extra = divmod(self.rows, self.splits)
        return base + (1 if split < extra else 0)

    def chunk_rows(self, split: int, chunk: int) -> int:
        """Rows of one chunk of one split."""
        base, extra = divmod(self.split_rows(split), self.chunks)
        return base + (1 if chunk < extra else 0)


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """Failures to inject: (stage id, task id) to a kind, first attempt of the first run only.

    Attributes:
        failures: (stage, task) to kind (``kill``, ``storage``, ``slow``, ``user``).
        can_kill: Whether ``kill`` may SIGKILL the process (False with the threads executor,
            where it raises a WorkerCrashedError instead).
        slow_seconds: How long a ``slow`` task sleeps.
    """

    failures: Mapping[tuple[str, int], str] = field(default_factory=dict)
    can_kill: bool = True
    slow_seconds: float = 6.0

    def kind(self, ctx: TaskContext) -> str | None:
        """The failure planned for this attempt, if any."""
        if ctx.query_attempt != 0 or ctx.attempt_id != 0:
            return None
        return self.failures.get((ctx.stage_id, ctx.task_id))

    def fire_if_planned(self, ctx: TaskContext) -> None:
        """Inject the failure planned for this attempt now, if there is one."""
        kind = self.kind(ctx)
        if kind is not None:
            self.fire(ctx, kind)

    def fire(self, ctx: TaskContext, kind: str) -> None:
        """Inject ``kind`` now."""
        where = f"task {ctx.stage_id}/{ctx.task_id} attempt {ctx.attempt_id}"
        if kind == "kill":
            if self.can_kill:
                os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(60)  # pragma: no cover - the signal arrives first
            raise WorkerCrashedError(f"injected worker crash in {where}")
        if kind == "storage":
            raise TransientStorageError(f"injected transient storage failure in {where}")
        if kind == "user":
            raise UserError(f"injected user error in {where}: division by zero")
        if kind == "slow":
            deadline = time.monotonic() + self.slow_seconds
            while time.monotonic() < deadline and not ctx.cancelled:
                time.sleep(0.05)


def make_failure_plan(
    spec: DemoSpec, failure_rate: float, seed: int, *, can_kill: bool = True
) -> FailurePlan:
    """A plan with one kill, one storage error and one slow task, plus random ones.

    With ``failure_rate`` 0 nothing is injected. Otherwise a scan task is killed mid-task, a
    scan task raises a transient storage error, a final-aggregate task is slow, and every
    other task's first attempt fails with probability ``failure_rate`` (kill or storage).
    """
    if failure_rate <= 0:
        return FailurePlan({}, can_kill=can_kill)
    rng = random.Random(seed)
    failures: dict[tuple[str, int], str] = {}
    scans = list(range(spec.splits))
    rng.shuffle(scans)
    failures["scan", scans[0]] = "kill"
    if len(scans) > 1:
        failures["scan", scans[1]] = "storage"
    failures["final", rng.randrange(spec.partitions)] = "slow"
    for stage, count in (("scan", spec.splits), ("final", spec.partitions), ("collect", 1)):
        for task in range(count):
            if (stage, task) not in failures and rng.random() < failure_rate:
                failures[stage, task] = rng.choice(("kill", "storage"))
    return FailurePlan(failures, can_kill=can_kill)


def _uniform_ints(seed: int, n: int, low: int, high: int) -> pa.Array:
    """``n`` deterministic integers in ``[low, high)`` (pyarrow's seeded generator)."""
    u = pc.random(n, initializer=seed)
    return pc.add(pc.cast(pc.floor(pc.multiply(u, float(high - low))), pa.int64()), low)


def generate_chunk(spec: DemoSpec, split: int, chunk: int) -> pa.Table:
    """The rows of one chunk of one split (deterministic)."""
    n = spec.chunk_rows(split, chunk)
    seed = (spec.seed * 1_000_003 + split) * 1_000_003 + chunk
    quantity = _uniform_ints(4 * seed, n, 1, 51)
    price = _uniform_ints(4 * seed + 1, n, 90_000, 10_500_000)  # cents
    discount = _uniform_ints(4 * seed + 2, n, 0, 11)  # percent
    return pa.table(
        {
            KEY: _uniform_ints(4 * seed + 3, n, 0, spec.groups),
            "quantity": quantity,
            "price": price,
            "disc_price": pc.multiply(price, pc.subtract(100, discount)),
            "rows": pa.repeat(pa.scalar(1, pa.int64()), n) if n else pa.array([], pa.int64()),
        }
    )


def _aggregate(table: pa.Table) -> pa.Table:
    return _normalize(table.group_by(KEY).aggregate(_AGGS))


def _normalize(agg: pa.Table) -> pa.Table:
    """Rename ``x_sum`` back to ``x`` so partial aggregates merge like rows."""
    names = [n[: -len("_sum")] if n.endswith("_sum") else n for n in agg.column_names]
    agg = agg.rename_columns(names)
    return agg.select([KEY, "quantity", "price", "disc_price", "rows"])


def _partition_of(keys: pa.ChunkedArray | pa.Array, partitions: int) -> pa.Array:
    """Output partition of each key: a multiplicative hash (uint64 arithmetic wraps)."""
    values = pc.cast(keys, pa.uint64())
    mixed = pc.shift_right(
        pc.multiply(values, pa.scalar(0x9E3779B97F4A7C15, pa.uint64())),
        pa.scalar(33, pa.uint64()),
    )
    m = pa.scalar(partitions, pa.uint64())
    remainder = pc.subtract(mixed, pc.multiply(pc.divide(mixed, m), m))  # no modulo kernel
    return pc.cast(remainder, pa.int64())


def _table_to_bytes(table: pa.Table) -> bytes:
    return bytes(batch_to_bytes(table.combine_chunks().to_batches()[0])) if table.num_rows else b""


@dataclass(frozen=True, slots=True)
class ScanTask:
    """Stage 1: generate a split, aggregate partially, hash-partition into the exchange."""

    spec: DemoSpec
    failures: FailurePlan

    def __call__(self, ctx: TaskContext) -> None:
        """Run one scan attempt (resuming from the last saved chunk)."""
        spec = self.spec
        start = 0
        partial: pa.Table | None = None
        saved = ctx.restore_state()
        if saved:
            start = int.from_bytes(saved[:4], "big")
            blob = saved[4:]
            partial = pa.Table.from_batches(bytes_to_batches(blob)) if blob else None
        kind = self.failures.kind(ctx)
        for chunk in range(start, spec.chunks):
            table = _aggregate(generate_chunk(spec, ctx.task_id, chunk))
            partial = table if partial is None else _aggregate(pa.concat_tables([partial, table]))
            if ctx.state is not None:
                ctx.save_state((chunk + 1).to_bytes(4, "big") + _table_to_bytes(partial))
            if kind in ("kill", "storage") and chunk == spec.chunks // 2:
                self.failures.fire(ctx, kind)
        if kind in ("slow", "user"):
            self.failures.fire(ctx, kind)
        if partial is None:
            return
        parts = _partition_of(partial.column(KEY), ctx.output_partition_count)
        for p in range(ctx.output_partition_count):
            piece = partial.filter(pc.equal(parts, p))
            for batch in piece.to_batches(max_chunksize=_BATCH_ROWS):
                write_batch(ctx.sink, p, batch)


@dataclass(frozen=True, slots=True)
class FinalAggregateTask:
    """Stage 2: merge the partial aggregates of one partition."""

    failures: FailurePlan

    def __call__(self, ctx: TaskContext) -> None:
        """Run one final-aggregate attempt."""
        batches = list(read_batches(ctx.sources[0]))
        self.failures.fire_if_planned(ctx)
        if not batches:
            return
        merged = _aggregate(pa.Table.from_batches(batches))
        for batch in merged.to_batches(max_chunksize=_BATCH_ROWS):
            write_batch(ctx.sink, 0, batch)


@dataclass(frozen=True, slots=True)
class CollectTask:
    """Stage 3: order every group by key and return it."""

    failures: FailurePlan

    def __call__(self, ctx: TaskContext) -> None:
        """Run the collect attempt."""
        batches = list(read_batches(ctx.sources[0]))
        self.failures.fire_if_planned(ctx)
        table = pa.Table.from_batches(batches) if batches else _empty()
        result = _to_result(table.sort_by(KEY))
        for batch in result.to_batches(max_chunksize=_BATCH_ROWS):
            ctx.sink.add(0, batch_to_bytes(batch))


def _empty() -> pa.Table:
    return pa.table(
        {n: pa.array([], pa.int64()) for n in (KEY, "quantity", "price", "disc_price", "rows")}
    )


def _to_result(table: pa.Table) -> pa.Table:
    return pa.Table.from_arrays(
        [table.column(n) for n in (KEY, "quantity", "price", "disc_price", "rows")],
        schema=RESULT_SCHEMA,
    )


def build_demo_query(query_id: str, spec: DemoSpec, failures: FailurePlan | None = None) -> Query:
    """The three-stage query."""
    failures = failures or FailurePlan()
    return Query(
        query_id,
        (
            Stage("scan", ScanTask(spec, failures), spec.splits, output_partitions=spec.partitions),
            Stage("final", FinalAggregateTask(failures), spec.partitions, inputs=("scan",)),
            Stage("collect", CollectTask(failures), 1, inputs=("final",)),
        ),
    )


def collect_result(rows: list[bytes]) -> pa.Table:
    """The query's result rows as one table."""
    batches = [b for r in rows for b in bytes_to_batches(r)]
    if not batches:
        return RESULT_SCHEMA.empty_table()
    return pa.Table.from_batches(batches).combine_chunks()


def reference_result(spec: DemoSpec) -> pa.Table:
    """The same answer computed in one process with pyarrow, chunk by chunk."""
    partial: pa.Table | None = None
    for split in range(spec.splits):
        for chunk in range(spec.chunks):
            table = _aggregate(generate_chunk(spec, split, chunk))
            partial = table if partial is None else _aggregate(pa.concat_tables([partial, table]))
    table = partial if partial is not None else _empty()
    return _to_result(table.sort_by(KEY)).combine_chunks()


def total_rows(table: pa.Table) -> int:
    """Rows counted by the result (sum of count_order)."""
    return int(pc.sum(table.column("count_order")).as_py() or 0) if table.num_rows else 0
