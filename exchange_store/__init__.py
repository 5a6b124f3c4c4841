"""exchange-store: storage for fault-tolerant distributed query execution.

The public surface (see the README and API.md): the exchange manager with its sinks, sources
and handles, the snapshot store, and the error tree.
"""

from __future__ import annotations

from exchange_store.errors import (
    BackendNotInstalledError,
    CommitConflictError,
    CommitStateUnknownError,
    ConfigurationError,
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
    StorageFileNotFoundError,
    TransientStorageError,
    UserError,
)
from exchange_store.exchange import (
    AttemptNotCommittedError,
    Exchange,
    ExchangeContext,
    ExchangeManager,
    ExchangeSink,
    ExchangeSinkHandle,
    ExchangeSinkInstanceHandle,
    ExchangeSource,
    ExchangeSourceHandle,
    ExchangeStateError,
)
from exchange_store.format import UnknownFormatVersionError
from exchange_store.snapshots import (
    PendingSnapshot,
    RetentionPolicy,
    Snapshot,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    SnapshotStore,
    SnapshotStoreConfig,
    SnapshotTaskHandle,
    TooManyPendingSnapshotsError,
)

__version__ = "0.1.0"

__all__ = [
    "AttemptNotCommittedError",
    "BackendNotInstalledError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "ConfigurationError",
    "Exchange",
    "ExchangeContext",
    "ExchangeManager",
    "ExchangeSink",
    "ExchangeSinkHandle",
    "ExchangeSinkInstanceHandle",
    "ExchangeSource",
    "ExchangeSourceHandle",
    "ExchangeStateError",
    "ExchangeStoreError",
    "IntegrityError",
    "InvalidArgumentError",
    "PendingSnapshot",
    "RetentionPolicy",
    "Snapshot",
    "SnapshotExpiredError",
    "SnapshotIncompleteError",
    "SnapshotNotFoundError",
    "SnapshotStateError",
    "SnapshotStore",
    "SnapshotStoreConfig",
    "SnapshotTaskHandle",
    "StorageError",
    "StorageFileNotFoundError",
    "TooManyPendingSnapshotsError",
    "TransientStorageError",
    "UnknownFormatVersionError",
    "UserError",
    "__version__",
]
