"""Entry points of processes started with multiprocessing (spawn) by the snapshot tests."""

from __future__ import annotations

import pickle
import time
from typing import Any

from exchange_store.snapshots import SnapshotStore


def write_forever(
    properties: dict[str, str],
    filesystems: dict[str, dict[str, str]] | None,
    key: bytes,
    handle_bytes: bytes,
    ready: Any,
) -> None:
    """Stream task state until killed; ``ready`` is set once several MiB went out."""
    store = SnapshotStore.from_properties(properties, filesystems=filesystems, key=key)
    handle = pickle.loads(handle_bytes)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with store.open_task_writer(handle) as writer:
        for i in range(1_000_000):
            writer.write(chunk)
            if i == 12:
                ready.set()
            if i > 12:
                time.sleep(0.01)  # the parent SIGKILLs this process
