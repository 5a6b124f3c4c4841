"""Fixtures for the admin tools: etc directories and a real owner process to kill."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

# A real exchange owner: creates an exchange with a short lease, commits one attempt, leaves an
# uncommitted one, prints "ready" and waits to be killed.
OWNER = r"""
import json, os, sys, time
args = json.loads(sys.argv[1])
from exchange_store.exchange.manager import ExchangeManager
from exchange_store.exchange.handles import ExchangeContext
manager = ExchangeManager.from_properties(args["properties"], filesystems=args["filesystems"])
exchange = manager.create_exchange(ExchangeContext(args["query_id"], args["exchange_id"]), 3)
sink = exchange.add_sink(0)
exchange.no_more_sinks()
with manager.create_sink(exchange.instantiate_sink(sink, 0)) as s:
    for i in range(200):
        s.add(i % 3, b"row-%d " % i * 50)
exchange.sink_finished(sink, 0)
crashed = manager.create_sink(exchange.instantiate_sink(sink, 1))
for i in range(50):
    crashed.add(i % 3, b"late-%d " % i * 50)
# Incompressible bytes past the S3 part size, so the crashed attempt has an upload in flight.
for i in range(args["in_flight_bytes"] // (256 << 10)):
    crashed.add(i % 3, os.urandom(256 << 10))
print("ready", flush=True)
time.sleep(600)
"""


def write_etc(
    root: pathlib.Path,
    exchange: Mapping[str, str] | None,
    filesystem: Mapping[str, str],
    snapshot: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """An etc directory with the given exchange-manager and filesystem properties."""
    etc = root / "etc"
    (etc / "filesystem").mkdir(parents=True, exist_ok=True)

    def dump(path: pathlib.Path, values: Mapping[str, str]) -> None:
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    if exchange is not None:
        dump(etc / "exchange-manager.properties", exchange)
    if snapshot is not None:
        dump(etc / "snapshot-store.properties", snapshot)
    dump(etc / "filesystem" / "exchange.properties", filesystem)
    return etc


@pytest.fixture
def local_etc(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    """(etc dir, base dir) on the local filesystem."""
    base = tmp_path / "exchange"
    base.mkdir()
    etc = write_etc(
        tmp_path,
        {"exchange.base-directories": str(base), "exchange-filesystem-type": "exchange"},
        {"fs.client.type": "local"},
    )
    return etc, str(base)


class Owner:
    """A real process owning an exchange; :meth:`kill` sends SIGKILL."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def spawn_owner() -> Iterator[Callable[..., Owner]]:
    """Start owner processes; every one still running at teardown is killed."""
    started: list[subprocess.Popen[str]] = []

    def spawn(
        base: str,
        filesystem: Mapping[str, str],
        *,
        query_id: str = "q1",
        exchange_id: str = "e1",
        lease_ttl: str = "1s",
        in_flight_bytes: int = 0,
    ) -> Owner:
        args: dict[str, Any] = {
            "properties": {
                "exchange.base-directories": base,
                "exchange.lease-ttl": lease_ttl,
                "exchange.compression-codec": "LZ4",
                "exchange.sink-max-buffer-size": "1MB",
            },
            "filesystems": {"exchange": dict(filesystem)},
            "query_id": query_id,
            "exchange_id": exchange_id,
            "in_flight_bytes": in_flight_bytes,
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", OWNER, json.dumps(args)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            proc.wait()
            raise AssertionError(f"owner process failed to start: {line!r}")
        return Owner(proc)

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
