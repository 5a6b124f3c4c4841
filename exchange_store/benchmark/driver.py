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
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.benchmark.data import BenchData
from exchange_store.benchmark.harness import median_by, ratio
from exchange_store.benchmark.memory import current_rss, peak_rss, reset_peak_rss
from exchange_store.errors import IntegrityError
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.filesystems.base import FileSystemClient, join

__all__ = [
    "BenchConfig",
    "BenchResult",
    "bare_codec_run",
    "exchange_run",
    "plain_io_run",
    "run_bench",
]

MB = float(1 << 20)
_READ_CHUNK = 8 << 20

Progress = Callable[[str, int], None]


def _no_progress(_what: str, _advance: int) -> None:
    return None


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


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One row of the report; every field is always present (None where not applicable).

    Attributes:
        name: ``exchange LZ4+AES``, ``plain I/O``, ``bare ZSTD``, ...
        kind: ``exchange``, ``plain-io`` or ``bare-codec``.
        codec: NONE, LZ4 or ZSTD.
        encryption: AES-256-GCM on.
        raw_bytes: Record bytes moved.
        stored_bytes: Bytes on storage (or produced by the bare codec).
        write_seconds: Wall time of the write (write + commit) side.
        read_seconds: Wall time of the read side.
        write_mb_s: raw MiB / write seconds.
        read_mb_s: raw MiB / read seconds.
        write_vs_plain: write MB/s over plain I/O's write MB/s.
        read_vs_plain: read MB/s over plain I/O's read MB/s.
        compression_ratio: raw bytes / stored bytes.
        attempts: Task attempts (= tasks).
        files: Files written (data files and manifests).
        files_per_attempt: files / attempts.
        write_requests: Backend calls while writing (stream writes not counted).
        read_requests: Backend calls while reading.
        requests_per_attempt: write_requests / attempts.
        stream_writes: Writes into open streams (buffered by the backend).
        peak_rss_mb: RSS high-water mark during the run (MiB).
        peak_rss_delta_mb: That minus RSS at the start of the run (MiB).
        verified: Every record read back intact (checksum of all records).
    """

    name: str
    kind: str
    codec: str
    encryption: bool
    raw_bytes: int
    stored_bytes: int
    write_seconds: float
    read_seconds: float
    write_mb_s: float
    read_mb_s: float
    write_vs_plain: float | None
    read_vs_plain: float | None
    compression_ratio: float
    attempts: int
    files: int
    files_per_attempt: float
    write_requests: int
    read_requests: int
    requests_per_attempt: float
    stream_writes: int
    peak_rss_mb: float
    peak_rss_delta_mb: float
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class _Measure:
    write_seconds: float = 0.0
    read_seconds: float = 0.0
    stored: int = 0
    files: int = 0
    write_requests: int = 0
    read_requests: int = 0
    stream_writes: int = 0
    verified: bool = False
    rss0: int = 0
    peak: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _start_memory(m: _Measure) -> None:
    reset_peak_rss()
    m.rss0 = current_rss()


def _result(
    name: str, kind: str, codec: str, enc: bool, data: BenchData, m: _Measure, tasks: int
) -> BenchResult:
    m.peak = max(peak_rss(), m.rss0)
    raw = data.total_bytes
    return BenchResult(
        name=name,
        kind=kind,
        codec=codec,
        encryption=enc,
        raw_bytes=raw,
        stored_bytes=m.stored,
        write_seconds=round(m.write_seconds, 4),
        read_seconds=round(m.read_seconds, 4),
        write_mb_s=round(raw / MB / m.write_seconds, 1) if m.write_seconds else 0.0,
        read_mb_s=round(raw / MB / m.read_seconds, 1) if m.read_seconds else 0.0,
        write_vs_plain=None,
        read_vs_plain=None,
        compression_ratio=round(raw / m.stored, 3) if m.stored else 0.0,
        attempts=tasks,
        files=m.files,
        files_per_attempt=round(m.files / tasks, 2),
        write_requests=m.write_requests,
        read_requests=m.read_requests,
        requests_per_attempt=round(m.write_requests / tasks, 1),
        stream_writes=m.stream_writes,
        peak_rss_mb=round(m.peak / MB, 1),
        peak_rss_delta_mb=round((m.peak - m.rss0) / MB, 1),
        verified=m.verified,
    )


def _parallel(fn: Callable[[int], Any], n: int, concurrency: int) -> list[Any]:
    with ThreadPoolExecutor(max(1, min(concurrency, n))) as pool:
        return list(pool.map(fn, range(n)))


# ---------------------------------------------------------------- plain I/O


def plain_io_run(
    client: CountingFileSystemClient,
    base: str,
    data: BenchData,
    *,
    concurrency: int = 4,
    progress: Progress = _no_progress,
) -> BenchResult:
    """Write each task's records into one file with a streaming write, then read them back."""
    root = join(base, f"bench-plain-{uuid.uuid4().hex[:12]}")
    tasks = len(data.tasks)
    expected = []
    for records in data.tasks:
        crc = 0
        for _, rec in records:
            crc = zlib.crc32(rec, crc)
        expected.append(crc)
    m = _Measure()
    _start_memory(m)
    client.reset()

    def write(t: int) -> None:
        with client.create(join(root, f"task-{t}.bin")) as stream:
            for _, rec in data.tasks[t]:
                stream.write(rec)
                progress("plain I/O write", len(rec))

    def read(t: int) -> bool:
        path = join(root, f"task-{t}.bin")
        size = client.size(path)
        crc = 0
        offset = 0
        while offset < size:
            chunk = client.read_range(path, offset, min(_READ_CHUNK, size - offset))
            if not chunk:
                raise IntegrityError(f"{path}: short read at {offset} of {size}")
            crc = zlib.crc32(chunk, crc)
            offset += len(chunk)
            progress("plain I/O read", len(chunk))
        return crc == expected[t]

    try:
        t0 = time.perf_counter()
        _parallel(write, tasks, concurrency)
        m.write_seconds = time.perf_counter() - t0
        calls = client.snapshot()
        m.write_requests = client.requests
        m.stream_writes = calls.get("stream_write", 0)
        files = list(client.walk(root))
        m.files = len(files)
        m.stored = sum(f.size for f in files)
        client.reset()
        t0 = time.perf_counter()
        oks = _parallel(read, tasks, concurrency)
        m.read_seconds = time.perf_counter() - t0
        m.read_requests = client.requests
        m.verified = all(oks) and m.stored == data.total_bytes
    finally:
        client.delete_recursive(root)
    return _result("plain I/O", "plain-io", "NONE", False, data, m, tasks)


# ---------------------------------------------------------------- bare codec


def _blocks(data: BenchData, block_size: int) -> Iterable[bytes]:
    buf: list[bytes] = []
    n = 0
    for records in data.tasks:
        for _, rec in records:
            buf.append(rec)
            n += len(rec)
            if n >= block_size:
                yield b"".join(buf)
                buf, n = [], 0
    if buf:
        yield b"".join(buf)


def bare_codec_run(
    codec_name: str,
    encryption: bool,
    data: BenchData,
    *,
    block_size: int = 1 << 20,
    threads: int = 2,
    tasks: int = 1,
    progress: Progress = _no_progress,
) -> BenchResult:
    """The codec (and AES-256-GCM) alone on the same bytes, block by block, on ``threads``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from exchange_store.codecs.registry import get_codec

    codec = get_codec(codec_name)
    aead = AESGCM(os.urandom(32)) if encryption else None
    aad = b"bench"
    m = _Measure()
    _start_memory(m)

    def encode(item: tuple[int, bytes]) -> tuple[int, bytes, int]:
        i, block = item
        out = codec.compress(block)
        if aead is not None:
            out = aead.encrypt(i.to_bytes(12, "big"), out, aad)
        progress(f"bare {codec_name} encode", len(block))
        return i, out, len(block)

    def decode(item: tuple[int, bytes, int]) -> int:
        i, stored, raw = item
        payload = stored
        if aead is not None:
            payload = aead.decrypt(i.to_bytes(12, "big"), payload, aad)
        out = codec.decompress(payload, raw)
        progress(f"bare {codec_name} decode", raw)
        return zlib.crc32(out) if len(out) == raw else -1

    with ThreadPoolExecutor(max(1, threads)) as pool:
        t0 = time.perf_counter()
        encoded = list(pool.map(encode, enumerate(_blocks(data, block_size))))
        m.write_seconds = time.perf_counter() - t0
        m.stored = sum(len(e[1]) for e in encoded)
        t0 = time.perf_counter()
        crcs = list(pool.map(decode, encoded))
        m.read_seconds = time.perf_counter() - t0
    expected = [zlib.crc32(b) for b in _blocks(data, block_size)]
    m.verified = crcs == expected
    name = f"bare {codec_name}" + ("+AES" if encryption else "")
    return _result(name, "bare-codec", codec_name, encryption, data, m, tasks)


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
    progress: Progress = _no_progress,
) -> BenchResult:
    """Move ``data`` through one exchange: every task writes one attempt, then read all back."""
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
    m = _Measure()
    _start_memory(m)
    client.reset()
    exchange = manager.create_exchange(ctx, data.partitions)
    try:
        sinks = [exchange.add_sink(t) for t in range(tasks)]
        exchange.no_more_sinks()

        def write(t: int) -> None:
            instance = exchange.instantiate_sink(sinks[t], 0)
            with manager.create_sink(instance) as sink:
                for partition, rec in data.tasks[t]:
                    sink.add(partition, rec)
                    progress(f"exchange {codec} write", len(rec))
            exchange.sink_finished(sinks[t], 0)

        t0 = time.perf_counter()
        _parallel(write, tasks, concurrency)
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

        by_partition: dict[int, list[Any]] = {}
        for h in handles:
            by_partition.setdefault(h.partition_id, []).append(h)
        groups = list(by_partition.values())

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
        parts = _parallel(read, len(groups), concurrency)
        m.read_seconds = time.perf_counter() - t0
        m.read_requests = client.requests
        got = [c for p in parts for c in p]
        m.verified = len(got) == data.records and sum(got) % (1 << 64) == data.checksum
    finally:
        exchange.close()
        close = getattr(manager, "close", None)
        if close is not None:
            close()
    name = f"exchange {codec}" + ("+AES" if encryption else "")
    return _result(name, "exchange", codec, encryption, data, m, tasks)


# ---------------------------------------------------------------- all of it


def run_bench(
    config: BenchConfig,
    client: FileSystemClient,
    bases: Sequence[str],
    data: BenchData,
    *,
    exchange_properties: dict[str, str] | None = None,
    progress: Progress = _no_progress,
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
    counting = counting or CountingFileSystemClient(client)
    runs: dict[str, list[BenchResult]] = {}
    for _ in range(max(1, config.repeat)):
        for row in _one_pass(config, counting, bases, data, exchange_properties, progress):
            runs.setdefault(row.name, []).append(row)
    rows = [_median(rs) for rs in runs.values()]
    plain = rows[0]
    return [_with_ratios(r, plain) for r in rows]


def _median(rows: list[BenchResult]) -> BenchResult:
    chosen = median_by(rows, lambda r: r.write_seconds + r.read_seconds)
    return replace(chosen, verified=all(r.verified for r in rows))


def _one_pass(
    config: BenchConfig,
    counting: CountingFileSystemClient,
    bases: Sequence[str],
    data: BenchData,
    exchange_properties: dict[str, str] | None,
    progress: Progress,
) -> list[BenchResult]:
    plain = plain_io_run(
        counting, bases[0], data, concurrency=config.concurrency, progress=progress
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


def _with_ratios(row: BenchResult, plain: BenchResult) -> BenchResult:
    # Rates, not times: the exchange's MB/s over plain I/O's.
    return replace(
        row,
        write_vs_plain=ratio(row.write_mb_s, plain.write_mb_s),
        read_vs_plain=ratio(row.read_mb_s, plain.read_mb_s),
    )
