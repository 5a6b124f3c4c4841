"""Exchange throughput against plain file I/O on the same bytes, in the same run.

:func:`run_exchange_bench` writes ``size_mb`` of lineitem-like records through an exchange
(``tasks`` task partitions, ``partitions`` output partitions, one attempt each, committed) and
reads them back through sources, then writes and reads the same bytes with plain file I/O (one
fsynced file per task, read back in 1 MiB chunks) in the same base directory. It returns one
dict of figures per configuration; :func:`run_memory_bench` measures a sink's peak memory at
several partition counts. ``bench/bench_exchange.py`` and the ``exchange-store bench`` CLI
call these.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.manager import ExchangeManager

__all__ = ["lineitem_records", "run_exchange_bench", "run_memory_bench"]

_MB = 1 << 20


def lineitem_records(seed: int, record_size: int, count: int) -> list[bytes]:
    """``count`` distinct, semi-compressible records of about ``record_size`` bytes each."""
    rng = random.Random(seed)
    flags = ["N", "R", "A"]
    modes = ["AIR", "MAIL", "SHIP", "TRUCK", "RAIL", "FOB", "REG AIR"]
    out = []
    for _ in range(count):
        rows = []
        size = 0
        while size < record_size:
            row = (
                f"{rng.randrange(6_000_000)}|{rng.randrange(200_000)}|{rng.randrange(10_000)}|"
                f"{rng.randrange(1, 8)}|{rng.randrange(1, 51)}|{rng.uniform(900, 105_000):.2f}|"
                f"0.0{rng.randrange(10)}|0.0{rng.randrange(9)}|{rng.choice(flags)}|"
                f"{rng.choice('OF')}|199{rng.randrange(2, 9)}-0{rng.randrange(1, 10)}-"
                f"{rng.randrange(10, 29)}|{rng.choice(modes)}|"
                f"{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz ', k=rng.randrange(10, 44)))}\n"
            )
            rows.append(row)
            size += len(row)
        out.append("".join(rows).encode()[:record_size])
    return out


def _records(
    pool: Sequence[bytes], total: int, partitions: int, seed: int
) -> Iterator[tuple[int, bytes]]:
    rng = random.Random(seed)
    written = 0
    i = 0
    while written < total:
        record = pool[i % len(pool)]
        yield rng.randrange(partitions), record
        written += len(record)
        i += 1


def run_exchange_bench(
    size_mb: int = 1024,
    *,
    partitions: int = 64,
    tasks: int = 8,
    record_size: int = 16 << 10,
    configs: Sequence[tuple[str, bool]] = (("NONE", False), ("LZ4", True)),
    base_dir: str | None = None,
    extra_properties: dict[str, str] | None = None,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """Exchange write+commit and read throughput vs plain file I/O, per (codec, encryption).

    Args:
        size_mb: Raw record bytes moved per configuration.
        partitions: Output partitions.
        tasks: Task partitions (one committed attempt each, run one after another).
        record_size: Bytes per record.
        configs: (codec, encryption) pairs to measure.
        base_dir: Local base directory (a temporary one when None; removed afterwards).
        extra_properties: More exchange-manager keys.
        seed: Data generation seed.

    Returns:
        One dict per configuration with MB/s, ratios against plain I/O, compression ratio,
        files and bytes per attempt.
    """
    own_dir = base_dir is None
    root = tempfile.mkdtemp(prefix="xs-bench-") if base_dir is None else base_dir
    pool = lineitem_records(seed, record_size, 256)
    total = size_mb * _MB
    per_task = total // tasks
    results = []
    try:
        for codec, encrypted in configs:
            # the baseline runs right before each configuration, in the same page-cache state
            plain = _plain_io(os.path.join(root, "plain"), pool, per_task, tasks, partitions, seed)
            props = {
                "exchange.base-directories": os.path.join(root, f"xs-{codec}-{encrypted}"),
                "exchange.compression-codec": codec,
                "exchange.encryption-enabled": str(encrypted).lower(),
                **(extra_properties or {}),
            }
            manager = ExchangeManager.from_properties(props)
            exchange = manager.create_exchange(
                ExchangeContext("bench", f"{codec}-{int(encrypted)}"), partitions
            )
            raw = 0
            files = []
            stored = []
            os.sync()  # do not pay for an earlier phase's dirty pages
            start = time.perf_counter()
            for tp in range(tasks):
                handle = exchange.add_sink(tp)
                with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
                    for p, record in _records(pool, per_task, partitions, seed + tp):
                        sink.add(p, record)
                        raw += len(record)
                manifest = sink.manifest
                assert manifest is not None
                files.append(len(manifest.files) + 1)  # + the manifest
                stored.append(manifest.stored_bytes)
                exchange.sink_finished(handle, 0)
            write_s = time.perf_counter() - start
            exchange.all_required_sinks_finished()
            start = time.perf_counter()
            handles = exchange.get_source_handles()
            source = manager.create_source(handles)
            source.no_more_source_handles()
            read_bytes = sum(len(r) for r in source)
            read_s = time.perf_counter() - start
            source.close()
            exchange.close()
            manager.close()
            assert read_bytes == raw, (read_bytes, raw)
            write_mbs = raw / _MB / write_s
            read_mbs = raw / _MB / read_s
            results.append(
                {
                    "codec": codec,
                    "encryption": encrypted,
                    "size_mb": round(raw / _MB, 1),
                    "partitions": partitions,
                    "tasks": tasks,
                    "write_mb_s": round(write_mbs, 1),
                    "read_mb_s": round(read_mbs, 1),
                    "plain_write_mb_s": round(plain["write_mb_s"], 1),
                    "plain_read_mb_s": round(plain["read_mb_s"], 1),
                    "write_ratio": round(write_mbs / plain["write_mb_s"], 3),
                    "read_ratio": round(read_mbs / plain["read_mb_s"], 3),
                    "compression_ratio": round(raw / max(1, sum(stored)), 3),
                    "files_per_attempt": max(files),
                    "stored_bytes_per_attempt": sum(stored) // tasks,
                    "source_handles": len(handles),
                }
            )
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    return results


def _plain_io(
    directory: str, pool: Sequence[bytes], per_task: int, tasks: int, partitions: int, seed: int
) -> dict[str, float]:
    """The same bytes with plain file I/O: one fsynced file per task, read in 1 MiB chunks."""
    os.makedirs(directory, exist_ok=True)
    raw = 0
    os.sync()
    start = time.perf_counter()
    for tp in range(tasks):
        path = os.path.join(directory, f"task-{tp}")
        with open(path, "wb") as f:
            for _, record in _records(pool, per_task, partitions, seed + tp):
                f.write(record)
                raw += len(record)
            f.flush()
            os.fsync(f.fileno())
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    read = 0
    for tp in range(tasks):
        with open(os.path.join(directory, f"task-{tp}"), "rb") as f:
            while chunk := f.read(_MB):
                read += len(chunk)
    read_s = time.perf_counter() - start
    shutil.rmtree(directory, ignore_errors=True)
    return {"write_mb_s": raw / _MB / write_s, "read_mb_s": read / _MB / read_s}


def run_memory_bench(
    partition_counts: Sequence[int] = (10, 1_000, 10_000),
    *,
    size_mb: int = 64,
    record_size: int = 1 << 10,
    base_dir: str | None = None,
    extra_properties: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Peak memory of one sink writing ``size_mb`` at each partition count (tracemalloc).

    Returns:
        Per partition count: tracemalloc peak, the sink's own peak ``memory_usage`` and the
        number of data files the attempt wrote.
    """
    own_dir = base_dir is None
    root = tempfile.mkdtemp(prefix="xs-bench-mem-") if base_dir is None else base_dir
    pool = lineitem_records(7, record_size, 512)
    out = []
    try:
        for count in partition_counts:
            props = {
                "exchange.base-directories": os.path.join(root, f"p{count}"),
                **(extra_properties or {}),
            }
            manager = ExchangeManager.from_properties(props)
            exchange = manager.create_exchange(ExchangeContext("mem", f"p{count}"), count)
            handle = exchange.add_sink(0)
            instance = exchange.instantiate_sink(handle, 0)
            records = [(p, r) for p, r in _records(pool, size_mb * _MB, count, 3)]
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            sink = manager.create_sink(instance)
            peak_usage = 0
            for i, (p, record) in enumerate(records):
                # a fresh copy, as an engine would serialize a new page: traced while buffered
                sink.add(p, bytearray(record))
                if i % 256 == 0:
                    peak_usage = max(peak_usage, sink.memory_usage)
            sink.finish()
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            manifest = sink.manifest
            assert manifest is not None
            out.append(
                {
                    "partitions": count,
                    "size_mb": size_mb,
                    "tracemalloc_peak_mb": round(peak / _MB, 1),
                    "sink_peak_memory_usage_mb": round(peak_usage / _MB, 1),
                    "data_files": len(manifest.files),
                    "blocks": sum(len(f.summary.blocks) for f in manifest.files),
                }
            )
            exchange.close()
            manager.close()
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    return out
