"""The exchange: where tasks spool the data flowing between them (see API.md).

Coordinator: :class:`ExchangeManager` -> :class:`Exchange` (sinks, attempts, deduplication,
source handles). Workers: :class:`ExchangeSink` writes one attempt, :class:`ExchangeSource`
reads source handles. Layout on storage: :mod:`exchange_store.exchange.paths`.
"""

from __future__ import annotations

from exchange_store.errors import (
    AttemptNotCommittedError,
    ExchangeClosedError,
    ExchangeStateError,
)
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.exchange.exchange import Exchange
from exchange_store.exchange.handles import (
    ExchangeContext,
    ExchangeSinkHandle,
    ExchangeSinkInstanceHandle,
    ExchangeSinkReceipt,
    ExchangeSourceHandle,
    SourceFile,
)
from exchange_store.exchange.manager import ExchangeManager
from exchange_store.exchange.sink import ExchangeSink
from exchange_store.exchange.source import ExchangeSource

__all__ = [
    "AttemptNotCommittedError",
    "Exchange",
    "ExchangeClosedError",
    "ExchangeContext",
    "ExchangeManager",
    "ExchangeManagerConfig",
    "ExchangeSink",
    "ExchangeSinkHandle",
    "ExchangeSinkInstanceHandle",
    "ExchangeSinkReceipt",
    "ExchangeSource",
    "ExchangeSourceHandle",
    "ExchangeStateError",
    "SourceFile",
]
