"""What a bench run measures and reports: one row per case, with the counters it needs.

Shared by the exchange run (:mod:`.driver`) and the baselines (:mod:`.baselines`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from exchange_store.benchmark.data import BenchData
from exchange_store.benchmark.memory import current_rss, peak_rss, reset_peak_rss

__all__ = [
    "MB",
    "BatchedProgress",
    "BenchResult",
    "Measure",
    "Progress",
    "no_progress",
    "parallel",
    "result",
    "start_memory",
]

MB = float(1 << 20)

Progress = Callable[[str, int], None]


def no_progress(_what: str, _advance: int) -> None:
    """A progress callback that shows nothing."""
    return None


class BatchedProgress:
    """Hands ``progress`` one call per ``step`` bytes of a phase and thread, not one per record.

    A progress bar's update takes a lock and reads the clock; called for every 64 KiB record
    from 4 threads it halved the plain I/O baseline's measured write speed (1.3 against 2.6
    GB/s), so the bench measured the bar. Each thread adds up its own bytes without a lock.
    """

    def __init__(self, progress: Progress, step: int = 8 << 20) -> None:
        self._progress = progress
        self._step = step
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[dict[str, int]] = []

    def __call__(self, what: str, advance: int) -> None:
        """Add ``advance`` bytes to ``what``; passes them on once a step is full."""
        counts: dict[str, int] | None = getattr(self._local, "counts", None)
        if counts is None:
            counts = self._local.counts = {}
            with self._lock:
                self._all.append(counts)
        total = counts.get(what, 0) + advance
        if total >= self._step:
            counts[what] = 0
            self._progress(what, total)
        else:
            counts[what] = total

    def flush(self) -> None:
        """Report what every thread has added up since its last call (after a phase ends)."""
        with self._lock:
            pending = [(w, n) for counts in self._all for w, n in counts.items() if n]
            for counts in self._all:
                counts.clear()
        for what, n in pending:
            self._progress(what, n)


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
        read_gets: Read requests (ranged and whole-object GETs) of the read side (0 for the
            bare codec, which reads no storage).
        gets_per_partition: read_gets / output partitions.
        bytes_per_get: Bytes per read request (0 without requests).
        total_vs_plain: plain (write + read) seconds over these (write + read) seconds.
        write_vs_bare: An exchange row's write MB/s over the bare codec + cipher row of the
            same codec and encryption (None for other rows).
        read_vs_bare: The same for reads.

    With several passes, each ratio is the median of every pass's own ratio: both sides of a
    ratio are measured in the same pass, seconds apart, so a slow spell of the machine in one
    pass does not decide it.
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
    read_gets: int = 0
    gets_per_partition: float | None = None
    bytes_per_get: float | None = None
    total_vs_plain: float | None = None
    write_vs_bare: float | None = None
    read_vs_bare: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class Measure:
    """Counters filled in while one case runs."""

    write_seconds: float = 0.0
    read_seconds: float = 0.0
    stored: int = 0
    files: int = 0
    write_requests: int = 0
    read_requests: int = 0
    stream_writes: int = 0
    verified: bool = False
    read_gets: int = 0
    read_bytes: int = 0
    rss0: int = 0
    peak: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def start_memory(m: Measure) -> None:
    """Reset the RSS high-water mark and note the RSS now."""
    reset_peak_rss()
    m.rss0 = current_rss()


def result(
    name: str, kind: str, codec: str, enc: bool, data: BenchData, m: Measure, tasks: int
) -> BenchResult:
    """The row of one finished case (rates, compression, requests, memory)."""
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
        read_gets=m.read_gets,
        gets_per_partition=round(m.read_gets / data.partitions, 2),
        bytes_per_get=round(m.read_bytes / m.read_gets) if m.read_gets else 0,
    )


def parallel(fn: Callable[[int], Any], n: int, concurrency: int) -> list[Any]:
    """``fn(0) .. fn(n - 1)`` on up to ``concurrency`` threads, results in order."""
    with ThreadPoolExecutor(max(1, min(concurrency, n))) as pool:
        return list(pool.map(fn, range(n)))
