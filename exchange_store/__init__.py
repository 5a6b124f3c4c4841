"""exchange-store: storage for fault-tolerant distributed query execution."""

from __future__ import annotations

from exchange_store.errors import (
    CommitConflictError,
    ConfigurationError,
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
    UserError,
)

__all__ = [
    "CommitConflictError",
    "ConfigurationError",
    "ExchangeStoreError",
    "IntegrityError",
    "InvalidArgumentError",
    "StorageError",
    "UserError",
]
