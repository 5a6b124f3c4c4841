"""Entry points of worker processes started with multiprocessing (spawn)."""

from __future__ import annotations

import pickle
import time
from typing import Any

from exchange_store.exchange.manager import ExchangeManager


def sink_worker(
    properties: dict[str, str],
    filesystems: dict[str, dict[str, str]] | None,
    instance_bytes: bytes,
    records: list[tuple[int, bytes]],
    finish: bool,
    ready: Any,
) -> None:
    """Build a manager from the configuration, write the attempt from the pickled handle.

    With ``finish`` False it flushes what it can, reports ``ready`` and waits to be killed.
    """
    manager = ExchangeManager.from_properties(properties, filesystems=filesystems)
    instance = pickle.loads(instance_bytes)
    sink = manager.create_sink(instance)
    for partition, data in records:
        sink.add(partition, data)
    if finish:
        sink.finish()
        ready.set()
        return
    ready.set()
    while True:  # the parent kills this process with SIGKILL
        time.sleep(1)
