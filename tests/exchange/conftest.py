"""Fixtures of the exchange tests: one manager factory per backend (local, S3 on moto)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from exchange_store.exchange.manager import ExchangeManager


@dataclass
class Backend:
    """How to build managers on one backend, and what they were built from."""

    name: str
    base_directories: list[str]
    filesystems: dict[str, dict[str, str]] | None
    managers: list[ExchangeManager] = field(default_factory=list)

    def properties(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        props = {"exchange.base-directories": ",".join(self.base_directories)}
        if self.filesystems:
            props["exchange-filesystem-type"] = next(iter(self.filesystems))
        props.update(extra or {})
        return props

    def manager(self, extra: dict[str, str] | None = None) -> ExchangeManager:
        """A manager from these base directories plus ``extra`` exchange-manager keys."""
        m = ExchangeManager.from_properties(self.properties(extra), filesystems=self.filesystems)
        self.managers.append(m)
        return m

    def files(self, manager: ExchangeManager) -> list[str]:
        """Every file under every base directory."""
        return [
            info.path for base in manager.base_directories for info in manager.client.walk(base)
        ]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    if request.param == "local":
        b = Backend("local", [str(tmp_path / "base-a"), str(tmp_path / "base-b")], None)
    else:
        bucket = request.getfixturevalue("s3_bucket")
        props = request.getfixturevalue("s3_properties")
        b = Backend("s3", [f"s3://{bucket}/ex-a", f"s3://{bucket}/ex-b"], {"s3": props})
    yield b
    for m in b.managers:
        m.close()


@pytest.fixture
def local_backend(tmp_path) -> Iterator[Backend]:
    b = Backend("local", [str(tmp_path / "base-a"), str(tmp_path / "base-b")], None)
    yield b
    for m in b.managers:
        m.close()
