"""Exchange throughput against plain file I/O on the same bytes, in the same run.

:func:`run_exchange_bench` writes ``size_mb`` of lineitem-like records through an exchange
(``tasks`` task partitions, ``partitions`` output partitions, one attempt each, committed) and
reads them back through sources, and writes and reads the same bytes with plain file I/O (one
file per task, fsynced as the exchange fsyncs, read back in 1 MiB chunks) in the same base
directory, in alternating rounds (best of ``repeat``), reads warm and (as root) cold. It returns
one
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

from exchange_store._malloc import raise_malloc_thresholds
from exchange_store.benchmark.data import record_pool
from exchange_store.benchmark.harness import BestTimes, ratio
from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.manager import ExchangeManager

__all__ = [
    "drop_page_cache",
    "run_exchange_bench",
    "run_memory_bench",
]

_MB = 1 << 20


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


def drop_page_cache() -> bool:
    """Write back dirty pages and drop the page cache (root only); False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError:
        return False
    return True


def _consume(source: Any) -> int:
    n = 0
    for record in source:
        n += len(record)
    return n


def _plain_round(
    directory: str,
    data: Sequence[Sequence[tuple[int, bytes]]],
    cold: bool,
    times: BestTimes,
    fsync: bool,
) -> int:
    """The baseline: what a user would do to spool the same bytes.

    One file per task, written record by record (fsynced when the exchange fsyncs its data
    files, ``exchange.sink-fsync-data-files``), then read back in 1 MiB chunks (warm, then
    cold).
    """
    os.makedirs(directory, exist_ok=True)
    os.sync()
    raw = 0
    start = time.perf_counter()
    for tp, records in enumerate(data):
        with open(os.path.join(directory, f"task-{tp}"), "wb") as f:
            for _, record in records:
                f.write(record)
                raw += len(record)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    write_s = time.perf_counter() - start
    times.add("write", write_s)

    def read_all() -> float:
        start = time.perf_counter()
        got = 0
        for tp in range(len(data)):
            with open(os.path.join(directory, f"task-{tp}"), "rb") as f:
                while chunk := f.read(_MB):
                    got += len(chunk)
        if got != raw:
            raise AssertionError(f"plain read {got} bytes, wrote {raw}")
        return time.perf_counter() - start

    warm_s = read_all()
    times.add("read", warm_s)
    times.add("roundtrip", write_s + warm_s)
    if cold and drop_page_cache():
        times.add("read_cold", read_all())
    shutil.rmtree(directory, ignore_errors=True)
    os.sync()
    return raw


def _exchange_round(
    manager: ExchangeManager,
    exchange_id: str,
    partitions: int,
    data: Sequence[Sequence[tuple[int, bytes]]],
    cold: bool,
    times: BestTimes,
) -> dict[str, Any]:
    """One write+commit of every task, then reads through sources (warm, then cold)."""
    exchange = manager.create_exchange(ExchangeContext("bench", exchange_id), partitions)
    try:
        raw = 0
        files = []
        stored = []
        os.sync()  # do not pay for an earlier phase's dirty pages
        start, cpu0 = time.perf_counter(), time.process_time()
        for tp, records in enumerate(data):
            handle = exchange.add_sink(tp)
            with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
                for p, record in records:
                    sink.add(p, record)
                    raw += len(record)
            manifest = sink.manifest
            assert manifest is not None
            files.append(len(manifest.files) + 1)  # + the manifest
            stored.append(manifest.stored_bytes)
            exchange.sink_finished(handle, 0)
        exchange.all_required_sinks_finished()
        write_s = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        if "write" not in times.best or write_s < times.best["write"]:
            times.best["write_cpu_per_wall"] = cpu / write_s
        times.add("write", write_s)

        start = time.perf_counter()
        handles = exchange.get_source_handles()
        with manager.create_source(handles) as source:
            source.no_more_source_handles()
            got = _consume(source)
        warm_s = time.perf_counter() - start
        if got != raw:
            raise AssertionError(f"exchange read {got} bytes, wrote {raw}")
        times.add("read", warm_s)
        times.add("roundtrip", write_s + warm_s)
        if cold and drop_page_cache():
            start = time.perf_counter()
            with manager.create_source(exchange.get_source_handles()) as source:
                source.no_more_source_handles()
                got = _consume(source)
            times.add("read_cold", time.perf_counter() - start)
        return {"raw": raw, "files": max(files), "stored": sum(stored), "handles": len(handles)}
    finally:
        exchange.close()
        os.sync()


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
    repeat: int = 3,
    cold: bool = True,
) -> list[dict[str, Any]]:
    """Exchange write+commit and read throughput vs plain file I/O, per (codec, encryption).

    Each configuration runs ``repeat`` rounds; every round runs the plain-I/O baseline and the
    exchange on the same records, alternating which goes first, and each phase keeps its best
    time, so disk write-back noise does not decide a ratio. Before every write phase dirty
    pages are written back (``os.sync``). Reads are measured warm (right after the write, data
    in the page cache) and, when ``cold`` and the process may drop the page cache (root),
    cold (after ``echo 1 > /proc/sys/vm/drop_caches``).

    Args:
        size_mb: Raw record bytes moved per configuration.
        partitions: Output partitions.
        tasks: Task partitions (one committed attempt each, run one after another; the
            baseline writes one file per task, fsynced when the exchange fsyncs).
        record_size: Bytes per record (a Trino page is about 1 MiB; 16 KiB is a worst case).
        configs: (codec, encryption) pairs to measure.
        base_dir: Local base directory (a temporary one when None; removed afterwards).
        extra_properties: More exchange-manager keys.
        seed: Data generation seed.
        repeat: Rounds per configuration (best time per phase).
        cold: Also measure reads after dropping the page cache, when allowed.

    Returns:
        One dict per configuration: MB/s of each phase for both sides (``*_mb_s``,
        ``plain_*_mb_s``), ratios exchange/plain (``write_ratio``, ``read_ratio`` warm,
        ``read_cold_ratio``, ``roundtrip_ratio`` for write+commit+warm read), compression
        ratio, files and stored bytes per attempt, and the writer's CPU/wall.
    """
    own_dir = base_dir is None
    root = tempfile.mkdtemp(prefix="xs-bench-") if base_dir is None else base_dir
    pool = record_pool(seed, record_size)
    per_task = size_mb * _MB // tasks
    data = [list(_records(pool, per_task, partitions, seed + tp)) for tp in range(tasks)]
    cold = cold and drop_page_cache()
    results = []
    try:
        for codec, encrypted in configs:
            props = {
                "exchange.base-directories": os.path.join(root, f"xs-{codec}-{encrypted}"),
                "exchange.compression-codec": codec,
                "exchange.encryption-enabled": str(encrypted).lower(),
                **(extra_properties or {}),
            }
            manager = ExchangeManager.from_properties(props)
            fsync = manager.config.sink_fsync_data_files
            plain, xs = BestTimes(), BestTimes()
            info: dict[str, Any] = {}
            try:
                for r in range(max(1, repeat)):
                    xs_id = f"{codec}-{int(encrypted)}-{r}"
                    plain_dir = os.path.join(root, f"plain-{r}")
                    if r % 2 == 0:
                        _plain_round(plain_dir, data, cold, plain, fsync)
                        info = _exchange_round(manager, xs_id, partitions, data, cold, xs)
                    else:
                        info = _exchange_round(manager, xs_id, partitions, data, cold, xs)
                        _plain_round(plain_dir, data, cold, plain, fsync)
            finally:
                manager.close()
            raw = info["raw"]
            mb = raw / _MB

            def rate(times: BestTimes, phase: str, nbytes: int = raw) -> float | None:
                return times.rate(nbytes, phase)

            def vs_plain(phase: str, p: BestTimes = plain, x: BestTimes = xs) -> float | None:
                return ratio(p.best.get(phase), x.best.get(phase))

            results.append(
                {
                    "codec": codec,
                    "encryption": encrypted,
                    "record_size": record_size,
                    "size_mb": round(mb, 1),
                    "partitions": partitions,
                    "tasks": tasks,
                    "repeat": repeat,
                    "write_mb_s": rate(xs, "write"),
                    "plain_write_mb_s": rate(plain, "write"),
                    "write_ratio": vs_plain("write"),
                    "read_mb_s": rate(xs, "read"),
                    "plain_read_mb_s": rate(plain, "read"),
                    "read_ratio": vs_plain("read"),
                    "read_cold_mb_s": rate(xs, "read_cold"),
                    "plain_read_cold_mb_s": rate(plain, "read_cold"),
                    "read_cold_ratio": vs_plain("read_cold"),
                    "roundtrip_mb_s": rate(xs, "roundtrip"),
                    "plain_roundtrip_mb_s": rate(plain, "roundtrip"),
                    "roundtrip_ratio": vs_plain("roundtrip"),
                    "write_cpu_per_wall": round(xs.best.get("write_cpu_per_wall", 0.0), 2),
                    "compression_ratio": round(raw / max(1, info["stored"]), 3),
                    "files_per_attempt": info["files"],
                    "stored_bytes_per_attempt": info["stored"] // tasks,
                    "source_handles": info["handles"],
                }
            )
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    return results


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
    pool = record_pool(7, record_size, 512 * record_size)
    raise_malloc_thresholds()  # its one-off 16 MiB buffer must not count as sink memory
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
