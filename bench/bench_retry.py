"""Work redone by one task failure: retry-policy QUERY against TASK.

Runs the demo aggregation (scan -> final aggregate -> collect) on local processes with one
injected transient storage failure in a final-aggregate task (late in the query, where a
query retry costs most), under QUERY and under TASK, plus a clean run for reference. Prints
task runs, wall time and bytes spooled for each.

    .venv/bin/python bench/bench_retry.py [--rows 2000000] [--repeat 3] [--executor processes]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from exchange_store.demo.query import (
    DemoSpec,
    FailurePlan,
    build_demo_query,
    collect_result,
    reference_result,
)
from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.model import StorageSpec
from exchange_store.scheduler.retry import RetryPolicy
from exchange_store.scheduler.runner import QueryRunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", default="processes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    spec = DemoSpec(rows=args.rows, splits=args.splits, partitions=args.partitions)
    expected = reference_result(spec)
    failure = FailurePlan({("final", 0): "storage"}, can_kill=False)
    cases = [
        ("clean", "TASK", FailurePlan()),
        ("QUERY", "QUERY", failure),
        ("TASK", "TASK", failure),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-retry-") as tmp:
        storage = StorageSpec(
            exchange_properties={"exchange.base-directories": os.path.join(tmp, "exchange")},
            snapshot_properties={"snapshot.base-directories": os.path.join(tmp, "snapshots")},
            snapshot_key=os.urandom(32),
        )
        for name, kind, plan in cases:
            config = SchedulerConfig(
                retry=RetryPolicy(kind, initial_delay=0.0, max_delay=0.0),  # type: ignore[arg-type]
                executor_type=args.executor,
                workers=args.workers,
            )
            walls, runs = [], []
            for i in range(args.repeat):
                with QueryRunner(config, storage) as runner:
                    started = time.perf_counter()
                    result = runner.run(build_demo_query(f"bench_{name}_{i}", spec, plan))
                    walls.append(time.perf_counter() - started)
                assert collect_result(result.rows).equals(expected), name
                runs.append(result.runs())
            rows.append(
                {
                    "case": name,
                    "task_runs": runs[0],
                    "wall_s_median": round(statistics.median(walls), 2),
                    "wall_s_all": [round(w, 2) for w in walls],
                    "bytes_spooled": result.bytes_spooled,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    tasks = spec.splits + spec.partitions + 1
    print(
        f"{args.rows:,} rows, {tasks} tasks, executor={args.executor} x{args.workers}, "
        f"median of {args.repeat}"
    )
    print(f"{'case':<8}{'task runs':>10}{'redone':>8}{'wall s':>9}")
    for r in rows:
        print(
            f"{r['case']:<8}{r['task_runs']:>10}{r['task_runs'] - tasks:>8}{r['wall_s_median']:>9}"
        )


if __name__ == "__main__":
    main()
