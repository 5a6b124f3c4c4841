"""What a Python user would pick instead of exchange-store, on the same data in the same run.

* ``exchange``: exchange-store (LZ4, no encryption and LZ4+AES), tasks -> partitions.
* ``arrow-ipc``: one Arrow IPC stream file per task x partition, written and read by hand
  (Trino's original spooling layout): the files grow with tasks x partitions.
* ``dask``: ``dask.dataframe`` ``shuffle`` on the partition column, ``tasks`` and ``p2p``
  methods, on a local distributed cluster (skipped when dask[dataframe] is missing).

The local runs (plain I/O, exchange, Arrow IPC) are repeated ``--repeat`` times (default 3),
each round in the opposite order of the one before; every row shows its median read and its
median write. The Dask shuffles run once.

Usage: ``python bench/bench_peers.py [--size 256MB] [--tasks 8] [--partitions 64] [--repeat 3]
[--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.benchmark.data import BenchData, generate
from exchange_store.benchmark.driver import exchange_run, plain_io_run
from exchange_store.config import parse_data_size
from exchange_store.filesystems.local import LocalFileSystemClient

MB = float(1 << 20)
SCHEMA = pa.schema([("payload", pa.binary())])


def _row(
    name: str,
    data: BenchData,
    write_s: float,
    read_s: float,
    stored: int,
    files: int,
    ok: bool,
    note: str = "",
) -> dict[str, Any]:
    raw = data.total_bytes
    return {
        "name": name,
        "write_mb_s": round(raw / MB / write_s, 1) if write_s else None,
        "read_mb_s": round(raw / MB / read_s, 1) if read_s else None,
        "total_s": round(write_s + read_s, 3),
        "compression_ratio": round(raw / stored, 3) if stored else None,
        "files": files,
        "files_per_task": round(files / len(data.tasks), 1),
        "verified": ok,
        "note": note,
    }


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of several rounds: the median read and write rates, verified only if all were."""
    row = dict(runs[-1])
    for key in ("write_mb_s", "read_mb_s"):
        row[key] = round(statistics.median(r[key] for r in runs), 1)
    row["total_s"] = round(statistics.median(r["total_s"] for r in runs), 3)
    row["verified"] = all(r["verified"] for r in runs)
    row["rounds"] = len(runs)
    return row


def arrow_ipc(
    data: BenchData,
    root: str,
    compression: str | None,
    concurrency: int,
    flush_bytes: int = 1 << 20,
) -> dict[str, Any]:
    """One IPC stream per task x partition; a batch is flushed per ~``flush_bytes``."""
    os.makedirs(root)
    options = ipc.IpcWriteOptions(compression=compression)

    def write(t: int) -> None:
        writers: dict[int, Any] = {}
        buffers: dict[int, list[bytes]] = {}
        sizes: dict[int, int] = {}

        def flush(p: int) -> None:
            if p not in writers:
                sink = pa.OSFile(os.path.join(root, f"t{t}-p{p}.arrow"), "wb")
                writers[p] = (sink, ipc.new_stream(sink, SCHEMA, options=options))
            writers[p][1].write_batch(
                pa.record_batch([pa.array(buffers[p], pa.binary())], schema=SCHEMA)
            )
            buffers[p], sizes[p] = [], 0

        for p, rec in data.tasks[t]:
            buffers.setdefault(p, []).append(rec)
            sizes[p] = sizes.get(p, 0) + len(rec)
            if sizes[p] >= flush_bytes:
                flush(p)
        for p in list(buffers):
            if buffers[p]:
                flush(p)
        for sink, writer in writers.values():
            writer.close()
            sink.close()

    def read(p: int) -> list[int]:
        crcs = []
        for t in range(len(data.tasks)):
            path = os.path.join(root, f"t{t}-p{p}.arrow")
            if not os.path.exists(path):
                continue
            with pa.memory_map(path) as src:
                for batch in ipc.open_stream(src):
                    crcs.extend(zlib.crc32(v) for v in batch.column(0).to_pylist())
        return crcs

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(write, range(len(data.tasks))))
    write_s = time.perf_counter() - t0
    files = os.listdir(root)
    stored = sum(os.path.getsize(os.path.join(root, f)) for f in files)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        parts = list(pool.map(read, range(data.partitions)))
    read_s = time.perf_counter() - t0
    got = [c for p in parts for c in p]
    ok = len(got) == data.records and sum(got) % (1 << 64) == data.checksum
    shutil.rmtree(root)
    name = f"arrow-ipc {compression or 'none'}"
    return _row(name, data, write_s, read_s, stored, len(files), ok)


def dask_shuffle(data: BenchData, method: str, workers: int) -> dict[str, Any] | None:
    """``DataFrame.shuffle(on=partition)`` on a local distributed cluster; None without dask."""
    try:
        import dask
        import dask.dataframe as dd
        import pandas as pd
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    frames = [
        pd.DataFrame({"partition": [p for p, _ in recs], "payload": [r for _, r in recs]})
        for recs in data.tasks
    ]
    dask.config.set({"dataframe.convert-string": False})
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # Scatter the input first so the timing covers the shuffle, not the upload.
        futures = client.scatter(frames)
        meta = frames[0].iloc[:0]
        df = dd.from_delayed(futures, meta=meta)
        t0 = time.perf_counter()
        shuffled = df.shuffle(
            on="partition", npartitions=data.partitions, shuffle_method=method
        ).persist()
        from distributed import wait

        wait(shuffled)
        shuffle_s = time.perf_counter() - t0

        def crcs(part: Any) -> Any:
            values = (v if isinstance(v, bytes) else str(v).encode() for v in part["payload"])
            return pd.Series([sum(zlib.crc32(v) for v in values), len(part)])

        t0 = time.perf_counter()
        sums = shuffled.map_partitions(crcs, meta=(None, "int64")).compute()
        read_s = time.perf_counter() - t0
    vals = list(sums)
    checksum = sum(vals[0::2]) % (1 << 64)
    ok = sum(vals[1::2]) == data.records and checksum == data.checksum
    row = _row(
        f"dask shuffle {method}",
        data,
        shuffle_s,
        read_s,
        0,
        0,
        ok,
        note="in worker memory/disk; write = shuffle, read = scan of shuffled output",
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=parse_data_size, default=256 << 20)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--record-size", type=parse_data_size, default=64 << 10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-dir", default=None, help="local directory (default: a temp dir)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the local runs (median)")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    base = args.base_dir or tempfile.mkdtemp(prefix="xs-peers-")
    os.makedirs(base, exist_ok=True)
    data = generate(
        args.size, args.tasks, args.partitions, record_size=args.record_size, seed=args.seed
    )
    client = CountingFileSystemClient(LocalFileSystemClient([base]))
    rows: list[dict[str, Any]] = []

    def add(fn: Callable[[], dict[str, Any] | None]) -> None:
        row = fn()
        if row is not None:
            rows.append(row)
            if not args.json:
                print(
                    f"  {row['name']}: write {row['write_mb_s']} MB/s, "
                    f"read {row['read_mb_s']} MB/s",
                    flush=True,
                )

    def ours(codec: str, enc: bool) -> dict[str, Any]:
        r = exchange_run(client, [base], data, codec, enc, concurrency=args.concurrency)
        return _row(
            r.name, data, r.write_seconds, r.read_seconds, r.stored_bytes, r.files, r.verified
        )

    def plain() -> dict[str, Any]:
        r = plain_io_run(client, base, data, concurrency=args.concurrency)
        return _row(
            r.name, data, r.write_seconds, r.read_seconds, r.stored_bytes, r.files, r.verified
        )

    local: list[Callable[[], dict[str, Any]]] = [
        plain,
        lambda: ours("NONE", False),
        lambda: ours("LZ4", False),
        lambda: ours("LZ4", True),
        lambda: arrow_ipc(data, os.path.join(base, "ipc-none"), None, args.concurrency),
        lambda: arrow_ipc(data, os.path.join(base, "ipc-lz4"), "lz4", args.concurrency),
    ]
    rounds: dict[str, list[dict[str, Any]]] = {}
    for r in range(max(1, args.repeat)):
        for fn in local if r % 2 == 0 else local[::-1]:
            row = fn()
            rounds.setdefault(row["name"], []).append(row)
    for runs in rounds.values():
        add(lambda runs=runs: _median_row(runs))  # type: ignore[misc]
    if not args.no_dask:
        workers = max(2, min(4, os.cpu_count() or 2))
        for method in ("tasks", "p2p"):
            add(lambda m=method: dask_shuffle(data, m, workers))  # type: ignore[misc]
    if args.base_dir is None:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "size": data.total_bytes,
                    "tasks": args.tasks,
                    "partitions": args.partitions,
                    "results": rows,
                },
                indent=2,
            )
        )
    else:
        cols = [
            "name",
            "write_mb_s",
            "read_mb_s",
            "total_s",
            "compression_ratio",
            "files",
            "files_per_task",
            "verified",
        ]
        print(
            f"\npeers: {data.total_bytes / MB:.0f} MiB, {args.tasks} tasks, "
            f"{args.partitions} partitions"
        )
        print(" | ".join(f"{c:>16}" for c in cols))
        for r in rows:
            print(" | ".join(f"{r[c]!s:>16}" for c in cols))
    return 0 if all(r["verified"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
