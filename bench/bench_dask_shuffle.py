"""Dask shuffles against the durable shuffle, with and without a SIGKILLed worker.

One LocalCluster (2 worker processes, 1 thread each); a frame of about ``--size-mb`` MiB
shuffled on ``key`` into 64 partitions by Dask's ``p2p`` and ``tasks`` shuffles and by
:class:`exchange_store.dask.DurableShuffle` (NONE and LZ4 + AES, local spool), each then counted
(every output partition materialised). With ``--kill``, one worker is SIGKILLed half-way
through the time of the same method's clean run, on a fresh cluster warmed by one clean run
(the nanny restarts the worker; whether it rejoined is reported). Median of ``--repeat``
runs.

    .venv/bin/python bench/bench_dask_shuffle.py [--size-mb 340] [--repeat 3] [--kill] [--s3]
        [--compression-min-saving 0.2] [--json]

With ``--s3`` the durable shuffle spools to S3 (a moto server in its own process on loopback,
as in ``bench_object_store.py``; needs the test extra) instead of a local directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from typing import Any

import dask
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd

import exchange_store as xs
from exchange_store.dask import DurableShuffle

EXTRA_PROPERTIES: dict[str, str] = {}


def make_frame(size_mb: int, partitions: int = 32) -> Any:
    rows = size_mb * (1 << 20) // 40  # about 40 bytes a row
    per = rows // partitions

    def part(i: int) -> pd.DataFrame:
        rng = np.random.default_rng(i)
        return pd.DataFrame(
            {
                "key": rng.integers(0, 1_000_000, per),
                "a": rng.random(per),
                "b": rng.random(per),
                "c": rng.integers(0, 1 << 40, per),
                "d": rng.random(per),
            }
        )

    meta = part(0).iloc[:0]
    return dd.from_delayed([dask.delayed(part)(i) for i in range(partitions)], meta=meta)


def run_once(
    client: Any,
    method: str,
    ddf: Any,
    spool: str,
    kill_after: float | None,
    filesystems: dict[str, dict[str, str]] | None = None,
) -> float:
    pids = list(client.run(os.getpid).values())
    killer = None
    if kill_after is not None:

        def kill() -> None:
            time.sleep(kill_after)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill)
    start = time.perf_counter()
    if method in ("p2p", "tasks"):
        out = ddf.shuffle(on="key", npartitions=64, method=method)
        if killer:
            killer.start()
        out.map_partitions(len).sum().compute()
    else:
        codec, enc = ("NONE", "false") if method == "durable NONE" else ("LZ4", "true")
        props = {
            "exchange.base-directories": spool,
            "exchange.compression-codec": codec,
            "exchange.encryption-enabled": enc,
            **EXTRA_PROPERTIES,
        }
        if filesystems:
            props["exchange-filesystem-type"] = next(iter(filesystems))
        manager = xs.ExchangeManager.from_properties(props, filesystems=filesystems)
        with DurableShuffle(manager, query_id=f"b{int(time.time() * 1000)}") as shuffler:
            out = shuffler.shuffle(ddf, on="key", npartitions=64)
            if killer:
                killer.start()
            out.map_partitions(len).sum().compute()
        manager.close()
    elapsed = time.perf_counter() - start
    if killer:
        killer.join()
    return elapsed


def _cluster() -> Any:
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )


def _persisted(size_mb: int) -> Any:
    ddf = make_frame(size_mb).persist()
    distributed.wait(ddf)
    return ddf


def killed_run(
    method: str,
    size_mb: int,
    spool: str,
    kill_after: float,
    filesystems: dict[str, dict[str, str]] | None,
) -> tuple[float, bool]:
    """One run with a worker SIGKILLed, on a cluster of its own (warmed by one clean run).

    Returns the run's time and whether the nanny's restarted worker rejoined within 60 s (a
    cluster that lost a worker for good never slows the runs after it).
    """
    with _cluster() as cluster, distributed.Client(cluster) as client:
        ddf = _persisted(size_mb)
        run_once(client, method, ddf, spool, None, filesystems)
        elapsed = run_once(client, method, ddf, spool, kill_after, filesystems)
        try:
            client.wait_for_workers(2, timeout=60)
        except Exception:
            return elapsed, False
        return elapsed, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=340)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kill", action="store_true", help="also runs with a SIGKILLed worker")
    parser.add_argument("--s3", action="store_true", help="spool the durable shuffle to S3")
    parser.add_argument(
        "--compression-min-saving",
        default=None,
        help="exchange.compression-min-saving for the durable shuffle (default: the key's own)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.compression_min_saving is not None:
        EXTRA_PROPERTIES["exchange.compression-min-saving"] = args.compression_min_saving
    methods = ["p2p", "tasks", "durable NONE", "durable LZ4+AES"]
    rows = []
    filesystems = None
    server = None
    if args.s3:
        from bench_object_store import moto_bucket

        props, server = moto_bucket("dask")
        filesystems = {"s3": props}
    # The workers' statistical profiler can deadlock a worker on Python 3.11 (CPython
    # gh-106883: sys._current_frames() runs the GC under the thread-list lock); seen here as a
    # 15-minute hang in a map task. Off for every method alike, as the README advises.
    os.environ.setdefault("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "False")
    dask.config.set({"distributed.worker.profile.enabled": False})
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as local_spool:
        spool = "s3://dask/spool" if args.s3 else local_spool
        for method in methods:
            # Clean runs on one cluster per method, from an input spread over both workers;
            # each killed run on a cluster of its own, so a kill never leaves a lopsided input
            # or a missing worker to the runs after it.
            with _cluster() as cluster, distributed.Client(cluster) as client:
                ddf = _persisted(args.size_mb)
                clean = [
                    run_once(client, method, ddf, spool, None, filesystems)
                    for _ in range(args.repeat)
                ]
            row: dict[str, Any] = {
                "method": method,
                "clean_s": round(statistics.median(clean), 2),
                "clean_runs": [round(t, 2) for t in clean],
            }
            if args.kill:
                after = statistics.median(clean) / 2
                killed = [
                    killed_run(method, args.size_mb, spool, after, filesystems)
                    for _ in range(args.repeat)
                ]
                row["killed_s"] = round(statistics.median(t for t, _ in killed), 2)
                row["killed_runs"] = [round(t, 2) for t, _ in killed]
                row["kill_cost_s"] = round(row["killed_s"] - row["clean_s"], 2)
                row["worker_rejoined"] = [ok for _, ok in killed]
            rows.append(row)
    if server is not None:
        server.kill()
        server.wait()
    p2p = rows[0]["clean_s"]
    for r in rows:
        r["vs_p2p"] = round(p2p / r["clean_s"], 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{args.size_mb} MiB into 64 partitions, LocalCluster 2 processes, median of {args.repeat}"
    )
    for r in rows:
        extra = (
            f"  killed {r['killed_s']} s (+{r['kill_cost_s']} s, rejoined {r['worker_rejoined']})"
            if "killed_s" in r
            else ""
        )
        runs = r["clean_runs"] + r.get("killed_runs", [])
        head = f"{r['method']:<18} {r['clean_s']:>6} s  p2p/this {r['vs_p2p']:>5}"
        print(f"{head}{extra}  runs {runs}")


if __name__ == "__main__":
    main()
