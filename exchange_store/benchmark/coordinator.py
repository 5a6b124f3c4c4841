"""Coordinator-side costs: ``sink_finished`` with and without receipts, and handle size.

Two measurements for issue-style figures, both through the public API:

* :func:`measure_sink_finished`: N sinks commit through a plain client; the coordinator's own
  client injects ``latency`` seconds per request (an object store's round trip) and counts
  requests. It then reports N attempts finished with the receipts the sinks returned, and,
  on a second exchange, without them (one manifest GET each).
* :func:`measure_handle_size`: S sinks write one record to each of P partitions; the pickled
  size of ``get_source_handles()`` and the bytes per (file, partition) piece.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.exchange import ExchangeContext, ExchangeManager

__all__ = ["HandleSize", "SinkFinishedCost", "measure_handle_size", "measure_sink_finished"]

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SinkFinishedCost:
    """Coordinator time and requests for N ``sink_finished`` calls.

    Attributes:
        sinks: Attempts reported.
        latency: Injected seconds per request.
        with_receipts: Seconds for the N calls given the receipts.
        with_receipts_requests: Requests they made.
        without_receipts: Seconds for the N calls without receipts.
        without_receipts_requests: Requests they made.
    """

    sinks: int
    latency: float
    with_receipts: float
    with_receipts_requests: int
    without_receipts: float
    without_receipts_requests: int


@dataclass(frozen=True, slots=True)
class HandleSize:
    """Pickled size of the source handles of one exchange.

    Attributes:
        sinks: Task partitions (one data file each).
        partitions: Output partitions.
        handles: Handles returned.
        pieces: (file, partition) pieces they list.
        pickled_bytes: ``len(pickle.dumps(handles))``.
    """

    sinks: int
    partitions: int
    handles: int
    pieces: int
    pickled_bytes: int

    @property
    def bytes_per_piece(self) -> float:
        """Pickled bytes per (file, partition)."""
        return self.pickled_bytes / max(1, self.pieces)


def _reads(counting: CountingFileSystemClient) -> int:
    calls = counting.snapshot()
    # The lease refresher writes in the background: only reads are the coordinator's here.
    return sum(calls.get(op, 0) for op in ("read_file", "read_range", "info", "list"))


def _commit_all(
    manager: ExchangeManager, exchange: Any, sinks: int, threads: int, progress: Progress | None
) -> list[tuple[Any, Any]]:
    handles = [exchange.add_sink(t) for t in range(sinks)]
    exchange.no_more_sinks()

    def one(t: int) -> tuple[Any, Any]:
        sink = manager.create_sink(exchange.instantiate_sink(handles[t], 0))
        sink.add(t % exchange.output_partition_count, b"r" * 100)
        receipt = sink.finish()
        if progress is not None:
            progress(1)
        return handles[t], receipt

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(sinks)))


def measure_sink_finished(
    manager: ExchangeManager,
    *,
    sinks: int = 1000,
    latency: float = 0.010,
    query_id: str = "bench-receipts",
    threads: int = 8,
    progress: Progress | None = None,
) -> SinkFinishedCost:
    """Time N ``sink_finished`` calls with and without receipts behind injected latency."""
    counting = CountingFileSystemClient(manager.client, latency=latency)
    coordinator = ExchangeManager(manager.config, counting)
    results: list[tuple[float, int]] = []
    for n, use_receipt in enumerate((True, False)):
        exchange = coordinator.create_exchange(ExchangeContext(query_id, f"e{n}"), 16)
        try:
            done = _commit_all(manager, exchange, sinks, threads, progress)
            before = _reads(counting)
            start = time.perf_counter()
            for handle, receipt in done:
                exchange.sink_finished(handle, 0, receipt if use_receipt else None)
            results.append((time.perf_counter() - start, _reads(counting) - before))
        finally:
            exchange.close()
    (with_s, with_n), (without_s, without_n) = results
    return SinkFinishedCost(sinks, latency, with_s, with_n, without_s, without_n)


def measure_handle_size(
    manager: ExchangeManager,
    *,
    sinks: int = 1000,
    partitions: int = 1000,
    query_id: str = "bench-handles",
    threads: int = 2,
    progress: Progress | None = None,
) -> HandleSize:
    """Pickled size of ``get_source_handles()`` with S sinks x P partitions (one record each)."""
    exchange = manager.create_exchange(ExchangeContext(query_id, "e"), partitions)
    try:
        handles = [exchange.add_sink(t) for t in range(sinks)]
        exchange.no_more_sinks()
        record = b"x" * 16

        def one(t: int) -> None:
            sink = manager.create_sink(exchange.instantiate_sink(handles[t], 0))
            for p in range(partitions):
                sink.add(p, record)
            exchange.sink_finished(handles[t], 0, sink.finish())
            if progress is not None:
                progress(1)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(sinks)))
        exchange.all_required_sinks_finished()
        source_handles = exchange.get_source_handles()
        pieces = sum(h.file_count for h in source_handles)
        size = len(pickle.dumps(source_handles))
        return HandleSize(sinks, partitions, len(source_handles), pieces, size)
    finally:
        exchange.close()
