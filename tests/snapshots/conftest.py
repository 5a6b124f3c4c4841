"""Fixtures of the snapshot store tests: one store factory per backend (local and S3 on moto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from exchange_store.snapshots import SnapshotStore

KEY = bytes(range(32))


class Clock:
    """A settable clock for deadlines and expiry (no sleeping in tests)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """Where a test's stores keep their data."""

    name: str
    root: str
    filesystems: dict[str, dict[str, str]] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def properties(self, **overrides: str) -> dict[str, str]:
        props = {"snapshot.base-directories": self.root, **self.extra}
        props.update({k.replace("_", "-"): v for k, v in overrides.items()})
        return props


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Backend:
    if request.param == "local":
        return Backend("local", str(tmp_path / "snapshots"))
    root = request.getfixturevalue("s3_root")
    fs = request.getfixturevalue("s3_properties")
    return Backend("s3", root, {"s3": fs}, {"snapshot-filesystem-type": "s3"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


StoreFactory = Callable[..., SnapshotStore]


@pytest.fixture
def make_store(backend: Backend, clock: Clock) -> Iterator[StoreFactory]:
    """``make_store(key=KEY, clock=clock, **{"snapshot.x": "v"})`` -> a store; all closed after."""
    stores: list[SnapshotStore] = []

    def factory(
        props: dict[str, str] | None = None,
        *,
        key: bytes | None = KEY,
        clock_fn: Callable[[], float] | None = None,
    ) -> SnapshotStore:
        properties = backend.properties()
        properties.update(props or {})
        store = SnapshotStore.from_properties(
            properties,
            filesystems=backend.filesystems,
            key=key,
            clock=clock_fn or clock,
            environ={},
        )
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()
