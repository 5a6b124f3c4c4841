"""Task-state snapshots on a shared filesystem (openLooKeng task snapshots, Flink checkpoints).

See :class:`SnapshotStore` for the workflow and :mod:`exchange_store.snapshots.paths` for what
is stored where.
"""

from __future__ import annotations

from exchange_store.snapshots.config import SNAPSHOT_STORE_SCHEMA, SnapshotStoreConfig
from exchange_store.snapshots.keys import generate_key_file, load_key_file
from exchange_store.snapshots.model import (
    PendingSnapshot,
    Snapshot,
    SnapshotExpiredError,
    SnapshotIncompleteError,
    SnapshotNotFoundError,
    SnapshotStateError,
    SnapshotTaskHandle,
    TooManyPendingSnapshotsError,
)
from exchange_store.snapshots.retention import RetentionPolicy
from exchange_store.snapshots.store import SnapshotStore, SnapshotTaskWriter

__all__ = [
    "SNAPSHOT_STORE_SCHEMA",
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
    "SnapshotTaskWriter",
    "TooManyPendingSnapshotsError",
    "generate_key_file",
    "load_key_file",
]
