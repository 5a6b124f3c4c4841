"""Reliability suite fixtures and the figures it records.

Each test adds counts (crash points tried, mutations tried, races run, faults injected, and
the failures that must stay at zero: losses, silent corruptions, double reads, leftovers) to a
session-wide :class:`Figures`. At the end of the session they are written as JSON to
``$RELIABILITY_FIGURES`` (default ``var/reliability-figures.json`` under the rootdir) and printed
as a table, so ``make test-reliability`` shows them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import pytest
import tenacity

from exchange_store.filesystems.local import LocalFileSystemClient

#: Counters that must be zero for the promise to hold.
MUST_BE_ZERO = (
    "lost",
    "silent_corruptions",
    "wrong_attempt_read",
    "double_reads",
    "leftover_files",
    "half_visible",
    "wrong_errors",
)


class Figures:
    """Counters grouped by area (``crash_points``, ``corruption``, ``races``, ...)."""

    def __init__(self) -> None:
        self.areas: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, area: str, name: str, n: int = 1) -> None:
        """Add ``n`` to ``area.name``."""
        self.areas[area][name] += n

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {a: dict(sorted(c.items())) for a, c in sorted(self.areas.items())}

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for counters in self.areas.values():
            for k, v in counters.items():
                out[k] += v
        return dict(sorted(out.items()))


_FIGURES = Figures()
_STARTED = time.time()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    root = tmp_path / "base"
    root.mkdir()
    return str(root)


@pytest.fixture
def local_client(local_root: str) -> LocalFileSystemClient:
    client = LocalFileSystemClient([local_root])
    client.retry_wait = tenacity.wait_none()
    return client


def _figures_path(config: pytest.Config) -> Path:
    env = os.environ.get("RELIABILITY_FIGURES")
    return Path(env) if env else Path(config.rootpath) / "var" / "reliability-figures.json"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if not _FIGURES.areas:
        return
    path = _figures_path(config)
    doc = {
        "markexpr": config.getoption("markexpr", default="") or "",
        "python": platform.python_version(),
        "elapsed_seconds": round(time.time() - _STARTED, 1),
        "areas": _FIGURES.as_dict(),
        "totals": _FIGURES.totals(),
        "must_be_zero": {k: _FIGURES.totals().get(k, 0) for k in MUST_BE_ZERO},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:  # a read-only tree must not fail the run
        terminalreporter.write_line(f"could not write {path}: {exc}")
    tr = terminalreporter
    tr.section("reliability figures")
    width = max(len(f"{a}.{k}") for a, c in _FIGURES.areas.items() for k in c)
    for area, counters in _FIGURES.as_dict().items():
        for name, value in counters.items():
            flag = "  <-- must be 0" if name in MUST_BE_ZERO and value else ""
            tr.write_line(f"  {area + '.' + name:<{width}}  {value:>10,}{flag}")
    zero = ", ".join(f"{k}={v}" for k, v in doc["must_be_zero"].items())
    tr.write_line(f"  must be zero: {zero}")
    tr.write_line(f"  written to {path}")


class Backend:
    """Where a test's exchange lives: base directories, client properties, leftover check."""

    def __init__(self, name: str, base_dirs: list[str], fs_props: dict[str, str], leftovers):
        self.name = name
        self.base_dirs = base_dirs
        self.fs_props = fs_props
        self._leftovers = leftovers

    def leftovers(self) -> list[str]:
        """Every stored byte under the base directories (partial files and uploads too)."""
        return self._leftovers()

    def __repr__(self) -> str:
        return f"Backend({self.name})"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    from ._harness import local_leftovers, s3_leftovers

    if request.param == "local":
        bases = [str(tmp_path / "base-a"), str(tmp_path / "base-b")]
        return Backend(
            "local",
            bases,
            {"fs.client.type": "local"},
            lambda: [f for b in bases for f in local_leftovers(b)],
        )
    boto3 = pytest.importorskip("boto3")
    bucket = request.getfixturevalue("s3_bucket")
    props = dict(request.getfixturevalue("s3_properties"))
    s3 = boto3.client(
        "s3",
        endpoint_url=props["s3.endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    request.addfinalizer(s3.close)
    return Backend(
        "s3",
        [f"s3://{bucket}/base-a", f"s3://{bucket}/base-b"],
        props,
        lambda: s3_leftovers(s3, bucket),
    )
