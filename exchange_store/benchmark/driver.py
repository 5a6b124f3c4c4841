"""The benchmark: exchange throughput against plain I/O and bare codec work, in one run.

For each codec (NONE, LZ4, ZSTD) with and without encryption, ``tasks`` sinks write the
generated records into ``partitions`` output partitions through the public ExchangeManager API,
then sources read every partition back (the checksum of all records is verified). In the same
run, on the same filesystem client and the same bytes:

* **plain I/O**: each task streams its records into one file, then the files are read back in
  8 MiB ranges (what the exchange would cost with no format, no codec and no commit);
* **bare codec**: the codec (and AES-256-GCM) alone on the same bytes, in blocks of the
  configured block size, on as many threads as the format's writer uses.

Every backend call is counted by wrapping the client (:mod:`.counting`); peak memory is the
RSS high-water mark during each run (:mod:`.memory`).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from exchange_store.benchmark.baselines import bare_codec_run, plain_io_run
from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.benchmark.data import BenchData
from exchange_store.benchmark.harness import median_by, ratio
from exchange_store.benchmark.results import (
    BatchedProgress,
    BenchResult,
    Measure,
    Progress,
    no_progress,
    parallel,
    result,
    start_memory,
)
from exchange_store.exchange.config import EXCHANGE_MANAGER_SCHEMA, ExchangeManagerConfig
from exchange_store.filesystems.base import FileSystemClient, join

__all__ = [
    "BenchConfig",
    "BenchResult",
    "bare_codec_run",
    "exchange_run",
    "plain_io_run",
    "run_bench",
]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run.

    Attributes:
        size: Bytes of records to move.
        tasks: Writing tasks (one attempt each).
        partitions: Output partitions.
        record_size: Bytes per record.
        seed: Data generator seed.
        codecs: Codecs to run.
        encryption: Encryption settings to run.
        concurrency: Threads running tasks (and reading partitions) at once.
        block_size: Raw block size of the format (bare codec blocks too).
        repeat: Runs of everything; each row reports its median run (by total time).
        latency: Seconds added to every storage request (an object store's round trip).
        partitions_per_source: Neighbouring partitions one reading source takes.
    """

    size: int
    tasks: int = 8
    partitions: int = 64
    record_size: int = 64 << 10
    seed: int = 0
    codecs: tuple[str, ...] = ("NONE", "LZ4", "ZSTD")
    encryption: tuple[bool, ...] = (False, True)
    concurrency: int = 4
    block_size: int = 1 << 20
    repeat: int = 1
    latency: float = 0.0
    partitions_per_source: int = 1


# ---------------------------------------------------------------- exchange


def _new_manager(config: ExchangeManagerConfig, client: FileSystemClient) -> Any:
    """An ExchangeManager over ``client`` (the counting wrapper)."""
    from exchange_store.exchange.manager import ExchangeManager

    return ExchangeManager(config, client)


def exchange_run(
    client: CountingFileSystemClient,
    bases: Sequence[str],
    data: BenchData,
    codec: str,
    encryption: bool,
    *,
    concurrency: int = 4,
    block_size: int = 1 << 20,
    extra_properties: dict[str, str] | None = None,
    partitions_per_source: int = 1,
    progress: Progress = no_progress,
) -> BenchResult:
    """Move ``data`` through one exchange: every task writes one attempt, then read all back.

    The write side ends with ``get_source_handles()`` (which merges small pieces on object
    stores); each reading source takes ``partitions_per_source`` neighbouring partitions.
    """
    from exchange_store.exchange.handles import ExchangeContext

    values = {
        **(extra_properties or {}),
        "exchange.base-directories": ",".join(bases),
        "exchange.compression-codec": codec,
        "exchange.encryption-enabled": str(encryption).lower(),
        "exchange.block-size": f"{block_size}B",
    }
    config = ExchangeManagerConfig.from_properties(values, "<bench>")
    manager = _new_manager(config, client)
    tasks = len(data.tasks)
    ctx = ExchangeContext(f"bench-{uuid.uuid4().hex[:12]}", f"{codec.lower()}-{int(encryption)}")
    m = Measure()
    start_memory(m)
    client.reset()
    exchange = manager.create_exchange(ctx, data.partitions)
    try:
        sinks = [exchange.add_sink(t) for t in range(tasks)]
        exchange.no_more_sinks()

        def write(t: int) -> None:
            instance = exchange.instantiate_sink(sinks[t], 0)
            sink = manager.create_sink(instance)
            for partition, rec in data.tasks[t]:
                sink.add(partition, rec)
                progress(f"exchange {codec} write", len(rec))
            exchange.sink_finished(sinks[t], 0, sink.finish())

        t0 = time.perf_counter()
        parallel(write, tasks, concurrency)
        exchange.all_required_sinks_finished()
        handles = exchange.get_source_handles()
        m.write_seconds = time.perf_counter() - t0
        calls = client.snapshot()
        m.write_requests = client.requests
        m.stream_writes = calls.get("stream_write", 0)
        stored_files = [
            f
            for b in config.base_directories
            for f in client.walk(join(b, ctx.query_id, ctx.exchange_id))
            if f.name != "_lease"
        ]
        m.files = len(stored_files)
        m.stored = sum(f.size for f in stored_files)
        client.reset()

        by_source: dict[int, list[Any]] = {}
        for h in handles:
            by_source.setdefault(h.partition_id // max(1, partitions_per_source), []).append(h)
        groups = list(by_source.values())

        def read(i: int) -> list[int]:
            crcs = []
            source = manager.create_source(groups[i])
            source.no_more_source_handles()
            try:
                for record in source:
                    crcs.append(zlib.crc32(record))
                    progress(f"exchange {codec} read", len(record))
            finally:
                source.close()
            return crcs

        t0 = time.perf_counter()
        parts = parallel(read, len(groups), concurrency)
        m.read_seconds = time.perf_counter() - t0
        m.read_requests = client.requests
        calls = client.snapshot()
        m.read_gets = calls.get("read_range", 0) + calls.get("read_file", 0)
        m.read_bytes = client.bytes_read
        got = [c for p in parts for c in p]
        m.verified = len(got) == data.records and sum(got) % (1 << 64) == data.checksum
    finally:
        exchange.close()
        close = getattr(manager, "close", None)
        if close is not None:
            close()
    name = f"exchange {codec}" + ("+AES" if encryption else "")
    return result(name, "exchange", codec, encryption, data, m, tasks)


# ---------------------------------------------------------------- all of it


def run_bench(
    config: BenchConfig,
    client: FileSystemClient,
    bases: Sequence[str],
    data: BenchData,
    *,
    exchange_properties: dict[str, str] | None = None,
    progress: Progress = no_progress,
) -> list[BenchResult]:
    """Plain I/O, then every codec x encryption through the exchange and bare.

    Args:
        config: What to run.
        client: The filesystem client (wrapped to count calls unless it already counts).
        bases: Exchange base directories; plain I/O uses the first.
        data: The records (:func:`exchange_store.benchmark.data.generate`).
        exchange_properties: Further exchange-manager keys (from the etc file).
        progress: Called with (phase, bytes) as work advances.

    Returns:
        The rows, plain I/O first; exchange and bare rows carry ratios against plain I/O.
    """
    counting = client if isinstance(client, CountingFileSystemClient) else None
    counting = counting or CountingFileSystemClient(client, latency=config.latency)
    runs: dict[str, list[BenchResult]] = {}
    batched = BatchedProgress(progress)
    for _ in range(max(1, config.repeat)):
        rows = _one_pass(config, counting, bases, data, exchange_properties, batched)
        for row in _with_ratios(rows):
            runs.setdefault(row.name, []).append(row)
        batched.flush()
    return [_median(rs) for rs in runs.values()]


_RATIOS = (
    "write_vs_plain",
    "read_vs_plain",
    "total_vs_plain",
    "write_vs_bare",
    "read_vs_bare",
)


def _median(rows: list[BenchResult]) -> BenchResult:
    """The median pass of a row (by total time), with every ratio the median of the passes'."""
    chosen = median_by(rows, lambda r: r.write_seconds + r.read_seconds)
    ratios: dict[str, Any] = {}
    for name in _RATIOS:
        values = [v for r in rows if (v := getattr(r, name)) is not None]
        ratios[name] = round(statistics.median(values), 3) if values else None
    return replace(chosen, verified=all(r.verified for r in rows), **ratios)


def _one_pass(
    config: BenchConfig,
    counting: CountingFileSystemClient,
    bases: Sequence[str],
    data: BenchData,
    exchange_properties: dict[str, str] | None,
    progress: Progress,
) -> list[BenchResult]:
    fsync_key = EXCHANGE_MANAGER_SCHEMA.key("exchange.sink-fsync-data-files")
    fsync = (exchange_properties or {}).get(fsync_key.name)
    plain = plain_io_run(
        counting,
        bases[0],
        data,
        concurrency=config.concurrency,
        fsync=bool(fsync_key.default if fsync is None else fsync_key.convert(fsync)),
        progress=progress,
    )
    rows: list[BenchResult] = [plain]
    for codec in config.codecs:
        for enc in config.encryption:
            ex = exchange_run(
                counting,
                bases,
                data,
                codec,
                enc,
                concurrency=config.concurrency,
                block_size=config.block_size,
                extra_properties=exchange_properties,
                partitions_per_source=config.partitions_per_source,
                progress=progress,
            )
            bare = bare_codec_run(
                codec,
                enc,
                data,
                block_size=config.block_size,
                threads=min(config.concurrency, os.cpu_count() or 1),
                tasks=len(data.tasks),
                progress=progress,
            )
            rows += [ex, bare]
    return rows


def _with_ratios(rows: list[BenchResult]) -> list[BenchResult]:
    """One pass's rows with their ratios against that pass's plain I/O and bare codec rows.

    Rates, not times: a row's MB/s over the baseline's.
    """
    plain = rows[0]
    bare = {(r.codec, r.encryption): r for r in rows if r.kind == "bare-codec"}
    out = []
    for row in rows:
        floor = bare.get((row.codec, row.encryption)) if row.kind == "exchange" else None
        out.append(
            replace(
                row,
                write_vs_plain=ratio(row.write_mb_s, plain.write_mb_s),
                read_vs_plain=ratio(row.read_mb_s, plain.read_mb_s),
                total_vs_plain=ratio(
                    plain.write_seconds + plain.read_seconds,
                    row.write_seconds + row.read_seconds,
                ),
                write_vs_bare=None if floor is None else ratio(row.write_mb_s, floor.write_mb_s),
                read_vs_bare=None if floor is None else ratio(row.read_mb_s, floor.read_mb_s),
            )
        )
    return out
