"""``exchange-store demo``: a three-stage distributed aggregation with injected failures.

Runs :mod:`exchange_store.demo.query` on the configured executor (local processes by
default) with the configured retry policy (TASK in the shipped etc), kills a worker with
SIGKILL mid-task, makes a task fail with a transient storage error, makes one task slow so a
speculative copy wins, and (with a failure rate above 0) wraps the exchange's filesystem client
in the fault client so real storage calls meet 503 SlowDown and 500 replies that the client's
retries absorb. Then it prints what ran, checks the answer against a single-process
pyarrow computation and checks that no byte of the query is left in storage. The exit code is
0 only when the answer is right and storage is clean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from exchange_store.cli.etc import add_etc_argument, resolve_etc
from exchange_store.config import format_data_size, parse_data_size
from exchange_store.crypto.keyfile import ensure_key_file
from exchange_store.demo.faults import count_injected, with_storage_faults
from exchange_store.demo.query import (
    DemoSpec,
    build_demo_query,
    collect_result,
    make_failure_plan,
    reference_result,
)
from exchange_store.errors import ConfigurationError, ExchangeStoreError
from exchange_store.ids import check_id
from exchange_store.scheduler.config import EXECUTOR_TYPES, RETRY_POLICIES, SchedulerConfig
from exchange_store.scheduler.model import StorageSpec
from exchange_store.scheduler.retry import QueryFailedError, RetryPolicy
from exchange_store.scheduler.runner import QueryResult, QueryRunner, SchedulerEvent
from exchange_store.scheduler.worker import open_exchange_manager, open_snapshot_store

__all__ = ["leftover_files", "register", "run"]

_ROW_BYTES = 40  # five int64 columns
_FAULT_NAMES = {"throttle": "503 SlowDown", "server-error": "500 InternalError"}


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a distributed aggregation with injected failures",
        description=(
            "Run a three-stage aggregation (scan + partial aggregate, final aggregate, "
            "collect) through the exchange with failure injection (a SIGKILLed worker, a "
            "transient storage error, a slow task), check the answer and that storage is "
            "left clean."
        ),
    )
    add_etc_argument(p)
    p.add_argument(
        "--policy",
        choices=RETRY_POLICIES,
        type=str.upper,
        help="retry policy (default: retry-policy of etc/config.properties)",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTOR_TYPES,
        help="executor (default: executor.type of etc/config.properties)",
    )
    p.add_argument("--workers", type=int, help="attempts running at once")
    p.add_argument(
        "--failure-rate",
        type=float,
        default=0.1,
        help="chance a task's first attempt fails, on top of the three planned "
        "failures; 0 injects nothing (default: 0.1)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, help="rows to generate (default: 2000000)")
    size.add_argument("--size", help="data to generate, e.g. 64MB (40 bytes a row)")
    p.add_argument("--splits", type=int, default=8, help="scan tasks (default: 8)")
    p.add_argument("--partitions", type=int, default=4, help="final aggregate tasks (default: 4)")
    p.add_argument("--seed", type=int, default=42, help="seed for data and failures")
    p.add_argument(
        "--query-id",
        help="the query's id (default: a fresh one). Running the same id again after its "
        "coordinator died resumes it from what it committed",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="end stdout with one line of JSON: correct, resumed, tasks_run, tasks_reused, "
        "attempts, lineage_reruns, ...",
    )
    p.set_defaults(func=run)


@dataclass
class _StageStats:
    tasks: int
    attempts: int = 0
    failed: int = 0
    killed: int = 0
    started: float | None = None
    finished: float | None = None
    errors: list[str] = field(default_factory=list)
    reused: int = 0
    lost: int = 0


def leftover_files(storage: StorageSpec, query_id: str) -> list[str]:
    """Files of ``query_id`` still in the exchange and snapshot base directories."""
    out: list[str] = []
    manager = open_exchange_manager(storage)
    if manager is not None:
        for base in manager.base_directories:
            out.extend(i.path for i in manager.client.walk(f"{base.rstrip('/')}/{query_id}"))
    store = open_snapshot_store(storage)
    if store is not None:
        for job in store.list_jobs():
            if job.startswith(f"{query_id}-"):
                out.extend(i.path for i in store.client.walk(store.job_path(job)))
    return out


def _summary(console: Console, result: QueryResult, stats: dict[str, _StageStats]) -> None:
    table = Table(title=f"query {result.query_id}")
    for col in ("stage", "tasks", "attempts", "retries", "spooled", "stored", "ratio", "time"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage_id, s in stats.items():
        spooled, stored = result.stage_bytes.get(stage_id, (0, 0))
        elapsed = (s.finished or 0) - (s.started or 0) if s.started else 0.0
        table.add_row(
            stage_id,
            str(s.tasks),
            str(s.attempts),
            str(s.attempts - s.tasks),
            format_data_size(spooled) if stored else "-",
            format_data_size(stored) if stored else "-",
            f"{spooled / stored:.2f}" if stored else "-",
            f"{elapsed:.1f}s",
        )
    total_tasks = sum(s.tasks for s in stats.values())
    total_attempts = sum(s.attempts for s in stats.values())
    table.add_row(
        "total",
        str(total_tasks),
        str(total_attempts),
        str(total_attempts - total_tasks),
        format_data_size(result.bytes_spooled),
        format_data_size(result.bytes_stored),
        f"{result.bytes_spooled / result.bytes_stored:.2f}" if result.bytes_stored else "-",
        f"{result.wall_time:.1f}s",
        style="bold",
    )
    console.print(table)
    if result.query_attempts > 1:
        earlier = sum(1 for a in result.attempts if a.query_attempt < result.query_attempts - 1)
        console.print(
            f"query attempts: {result.query_attempts} (the table shows the last; earlier "
            f"attempts ran {earlier} task attempts, their results were never shown)"
        )
    labels = {
        "killed": "lost to a speculative copy",
        "cancelled": "cancelled: query attempt failed",
    }
    for a in result.attempts:
        if a.status not in ("failed", "killed", "cancelled"):
            continue
        what = a.error or labels[a.status]
        prefix = f"q{a.query_attempt} " if result.query_attempts > 1 else ""
        console.print(
            f"  [yellow]{prefix}{a.stage_id}/{a.task_id} attempt {a.attempt_id}[/]: {what}"
        )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the answer is right and storage is clean."""
    args.etc = resolve_etc(args.etc)
    console = Console()
    config = SchedulerConfig.from_etc(args.etc)
    if args.policy:
        r = config.retry
        config = config.replace(
            retry=RetryPolicy(
                args.policy,
                r.query_retry_attempts,
                r.task_retry_attempts_per_task,
                r.initial_delay,
                r.max_delay,
                r.scale_factor,
            )
        )
    if args.executor:
        config = config.replace(executor_type=args.executor)
    if args.workers:
        config = config.replace(workers=args.workers)
    if args.size:
        rows = parse_data_size(args.size) // _ROW_BYTES
    else:
        rows = args.rows if args.rows is not None else 2_000_000
    if rows < 1 or args.splits < 1 or args.partitions < 1:
        raise ConfigurationError("--rows/--size, --splits and --partitions must be positive")
    if not 0 <= args.failure_rate <= 1:
        raise ConfigurationError(f"--failure-rate {args.failure_rate}: allowed: 0 to 1")
    spec = DemoSpec(rows=rows, splits=args.splits, partitions=args.partitions, seed=args.seed)
    query_id = args.query_id or f"demo_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    check_id(query_id, "--query-id")
    for created in ensure_key_files(args.etc):
        console.print(f"created the missing key file {created} (mode 0600)")
    fault_log = os.path.abspath(f"var/demo-storage-faults-{query_id}.log")
    if args.failure_rate > 0:
        os.makedirs(os.path.dirname(fault_log), exist_ok=True)
        storage = with_storage_faults(args.etc, fault_log)
    else:
        storage = StorageSpec.from_etc(args.etc)
    open_exchange_manager(storage)  # configuration errors before anything runs
    open_snapshot_store(storage)
    plan = make_failure_plan(
        spec, args.failure_rate, args.seed, can_kill=config.executor_type != "threads"
    )
    query = build_demo_query(query_id, spec, plan)
    console.print(
        f"[bold]exchange-store demo[/] {query_id}: {rows:,} rows in {spec.splits} splits -> "
        f"{spec.partitions} partitions -> 1; retry-policy={config.retry.kind}, "
        f"executor={config.executor_type} x{config.workers}, "
        f"speculation={'on' if config.speculation_enabled else 'off'}"
    )
    if plan.failures:
        planned = ", ".join(f"{k} {s}/{t}" for (s, t), k in sorted(plan.failures.items()))
        console.print(f"injected failures (first attempt only): {planned}")

    stats = {s.stage_id: _StageStats(s.task_count) for s in query.stages}
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )
    bars = {
        s.stage_id: progress.add_task(s.stage_id, total=s.task_count, note="", start=False)
        for s in query.stages
    }

    def on_event(event: SchedulerEvent) -> None:
        if event.kind == "query-resumed":
            console.print(f"[bold]resuming[/] query {query_id}: {event.detail}")
            return
        if event.stage_id is None:
            if event.kind == "query-attempt" and event.query_attempt > 0:
                for stage_id, bar in bars.items():
                    progress.reset(bar, start=False, note=f"query retry {event.query_attempt}")
                    stats[stage_id] = _StageStats(stats[stage_id].tasks)
            return
        s = stats[event.stage_id]
        bar = bars[event.stage_id]
        now = time.monotonic()
        if event.kind == "stage-started":
            s.started = now
            progress.start_task(bar)
        elif event.kind == "stage-finished":
            s.finished = now
            progress.stop_task(bar)
        elif event.kind == "attempt-started":
            s.attempts += 1
        elif event.kind in ("attempt-finished", "task-reused"):
            progress.advance(bar)
            if event.kind == "task-reused":
                s.reused += 1
        elif event.kind == "task-lost":
            progress.advance(bar, -1)
            s.lost += 1
        elif event.kind == "attempt-failed":
            s.failed += 1
        elif event.kind == "attempt-killed":
            s.killed += 1
        notes = []
        if s.failed:
            notes.append(f"[red]{s.failed} failed[/]")
        if s.reused:
            notes.append(f"{s.reused} reused")
        if s.lost:
            notes.append(f"[yellow]{s.lost} lost, re-run[/]")
        if s.attempts > s.tasks - s.reused:
            notes.append(f"{s.attempts - (s.tasks - s.reused)} retried/speculative")
        progress.update(bar, note=", ".join(notes))

    try:
        with progress, QueryRunner(config, storage, listener=on_event) as runner:
            result = runner.run(query)
    except QueryFailedError as exc:
        console.print(f"[bold red]query failed[/]: {exc}")
        leftovers = leftover_files(storage, query_id)
        console.print(f"files left in storage: {len(leftovers)}")
        with contextlib.suppress(FileNotFoundError):
            os.remove(fault_log)
        if args.json:
            _print_json({"query_id": query_id, "correct": False, "error": str(exc)})
        return 1
    _summary(console, result, stats)

    got = collect_result(result.rows)
    expected = reference_result(spec)
    correct = got.equals(expected)
    if correct:
        console.print(
            f"[green]result correct[/]: {got.num_rows:,} groups match the single-process "
            "pyarrow computation"
        )
    else:
        console.print(
            f"[bold red]WRONG RESULT[/]: {got.num_rows:,} groups, expected {expected.num_rows:,}"
        )
    try:
        leftovers = leftover_files(storage, query_id)
    except ExchangeStoreError as exc:
        console.print(f"[red]could not check storage[/]: {exc}")
        return 1
    injected = count_injected(fault_log)
    with contextlib.suppress(FileNotFoundError):
        os.remove(fault_log)
    if injected:
        kinds = ", ".join(f"{_FAULT_NAMES.get(k, k)} x{n}" for k, n in sorted(injected.items()))
        console.print(
            f"storage faults injected under the exchange: {sum(injected.values())} ({kinds}), "
            "absorbed by the filesystem client's retries"
        )
    if leftovers:
        console.print(f"[bold red]{len(leftovers)} files left in storage[/], e.g. {leftovers[0]}")
    else:
        console.print("[green]storage clean[/]: no file of the query left in any base directory")
    if result.resumed or result.lineage_reruns:
        console.print(
            f"resumed: {'yes' if result.resumed else 'no'}, tasks reused: {result.tasks_reused},"
            f" lost outputs re-run (lineage): {result.lineage_reruns}"
        )
    if args.json:
        _print_json(
            {
                "query_id": query_id,
                "correct": bool(correct),
                "resumed": result.resumed,
                "tasks_run": len({(a.stage_id, a.task_id) for a in result.attempts}),
                "tasks_reused": result.tasks_reused,
                "attempts": len(result.attempts),
                "lineage_reruns": result.lineage_reruns,
                "query_attempts": result.query_attempts,
                "wall_time": round(result.wall_time, 3),
                "leftover_files": len(leftovers),
            }
        )
    return 0 if correct and not leftovers else 1


def _print_json(payload: dict[str, Any]) -> None:
    """One line of JSON, the last of stdout."""
    sys.stdout.flush()
    print(json.dumps(payload, sort_keys=True), flush=True)


def ensure_key_files(etc_dir: str) -> list[str]:
    """Create the key files the etc directory names but that do not exist yet.

    Only when the matching environment variable does not provide the key. A new key cannot
    make earlier data unreadable: there is none without the file.

    Returns:
        The files created.
    """
    from exchange_store.config import load_etc
    from exchange_store.exchange import config as exchange_config
    from exchange_store.snapshots import keys as snapshot_keys

    etc = load_etc(etc_dir)
    wanted = [
        (etc.exchange_manager, exchange_config.ENCRYPTION_KEY_FILE, exchange_config.KEY_ENV_VAR),
        (etc.snapshot_store, snapshot_keys.KEY_FILE_KEY, snapshot_keys.KEY_ENV_VAR),
    ]
    created = []
    for pf, key, env in wanted:
        value = (pf.values.get(key, "") if pf is not None else "").strip()
        if not value or os.environ.get(env, "").strip():
            continue
        path = os.path.abspath(value)
        if not os.path.exists(path):
            created.append(str(ensure_key_file(path)))
    return created
