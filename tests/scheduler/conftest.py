from __future__ import annotations

import os
from pathlib import Path

import pytest

from exchange_store.scheduler.model import StorageSpec


@pytest.fixture
def storage(tmp_path: Path) -> StorageSpec:
    return StorageSpec(
        exchange_properties={
            "exchange.base-directories": f"{tmp_path / 'ex1'},{tmp_path / 'ex2'}",
            "exchange.deduplication-buffer-size": "1kB",
        },
        snapshot_properties={"snapshot.base-directories": str(tmp_path / "snapshots")},
        snapshot_key=os.urandom(32),
    )


@pytest.fixture
def log_dir(tmp_path: Path) -> str:
    path = tmp_path / "log"
    path.mkdir()
    return str(path)
