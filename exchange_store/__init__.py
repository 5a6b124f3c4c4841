"""exchange-store: storage for fault-tolerant distributed query execution.

The public surface (see the README and API.md): the exchange manager with its sinks, sources
and handles, the snapshot store, and the error tree.
"""

from __future__ import annotations

from exchange_store.errors import (
    AttemptFailedError,
    AttemptNotCommittedError,
    BackendNotInstalledError,
    CommitConflictError,
    CommitStateUnknownError,
    ConfigurationError,
    ExchangeClosedError,
    ExchangeStateError,
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
    QueryFailedError,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    StorageError,
    StorageFileNotFoundError,
    TooManyPendingSnapshotsError,
    TransientStorageError,
    UnknownFormatVersionError,
    UserError,
)
from exchange_store.exchange import (
    Exchange,
    ExchangeContext,
    ExchangeManager,
    ExchangeSink,
    ExchangeSinkHandle,
    ExchangeSinkInstanceHandle,
    ExchangeSinkReceipt,
    ExchangeSource,
    ExchangeSourceHandle,
)
from exchange_store.snapshots import (
    PendingSnapshot,
    RetentionPolicy,
    Snapshot,
    SnapshotStore,
    SnapshotStoreConfig,
    SnapshotTaskHandle,
)

__version__ = "0.1.0"

__all__ = [
    "AttemptFailedError",
    "AttemptNotCommittedError",
    "BackendNotInstalledError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "ConfigurationError",
    "Exchange",
    "ExchangeClosedError",
    "ExchangeContext",
    "ExchangeManager",
    "ExchangeSink",
    "ExchangeSinkHandle",
    "ExchangeSinkInstanceHandle",
    "ExchangeSinkReceipt",
    "ExchangeSource",
    "ExchangeSourceHandle",
    "ExchangeStateError",
    "ExchangeStoreError",
    "IntegrityError",
    "InvalidArgumentError",
    "PendingSnapshot",
    "QueryFailedError",
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
