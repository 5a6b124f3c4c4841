"""Helpers shared by the exchange tests (also imported by spawned worker processes)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

from exchange_store.exchange.exchange import Exchange
from exchange_store.exchange.handles import ExchangeSinkHandle, ExchangeSourceHandle
from exchange_store.exchange.manager import ExchangeManager

Records = Sequence[tuple[int, bytes]]


def records_for(tp: int, partitions: int, count: int, size: int = 20) -> list[tuple[int, bytes]]:
    """Deterministic records of task partition ``tp``: ``count`` spread over partitions."""
    out = []
    for i in range(count):
        body = f"tp{tp}-r{i}-".encode()
        out.append((i % partitions, (body * (size // len(body) + 1))[: max(size, len(body))]))
    return out


def write_attempt(
    manager: ExchangeManager,
    exchange: Exchange,
    sink: ExchangeSinkHandle,
    attempt: int,
    records: Iterable[tuple[int, bytes]],
) -> None:
    """Write and commit one attempt."""
    instance = exchange.instantiate_sink(sink, attempt)
    with manager.create_sink(instance) as s:
        for partition, data in records:
            s.add(partition, data)


def read_all(manager: ExchangeManager, handles: Iterable[ExchangeSourceHandle]) -> list[bytes]:
    source = manager.create_source(handles)
    source.no_more_source_handles()
    try:
        return list(source)
    finally:
        source.close()


def by_partition(
    manager: ExchangeManager, handles: Sequence[ExchangeSourceHandle]
) -> dict[int, collections.Counter[bytes]]:
    out: dict[int, collections.Counter[bytes]] = {}
    for h in handles:
        out.setdefault(h.partition_id, collections.Counter()).update(read_all(manager, [h]))
    return out


def expected_by_partition(
    records: Iterable[tuple[int, bytes]],
) -> dict[int, collections.Counter[bytes]]:
    out: dict[int, collections.Counter[bytes]] = {}
    for p, data in records:
        out.setdefault(p, collections.Counter())[data] += 1
    return out
