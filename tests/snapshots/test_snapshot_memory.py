"""Task state is streamed with flat memory whatever its size (measured in a fresh process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("_memory_probe.py")
# Budget for the writer and reader: a few blocks in flight (8 x 1 MiB pending, 2 workers),
# the read-ahead of one chunk and allocator slack. Proportional memory would be >= 64 MiB.
GROWTH_LIMIT_KIB = 48 * 1024


def _probe(root: Path, size_mb: int, codec: str, encrypt: bool) -> dict[str, float]:
    try:
        out = subprocess.run(
            [
                sys.executable,
                str(PROBE),
                str(root / "snaps"),
                str(size_mb),
                codec,
                "1" if encrypt else "0",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        shutil.rmtree(root / "snaps", ignore_errors=True)  # do not leave a GiB in /tmp
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_encrypted_64mib_streams_with_flat_memory(tmp_path: Path) -> None:
    r = _probe(tmp_path, 64, "LZ4", encrypt=True)
    assert r["ok"] and r["bytes"] == 64 << 20
    assert r["peak_write_kib"] - r["baseline_kib"] < GROWTH_LIMIT_KIB, r
    assert r["peak_read_kib"] - r["baseline_kib"] < GROWTH_LIMIT_KIB, r


def test_one_gib_streams_with_flat_memory(tmp_path: Path) -> None:
    r = _probe(tmp_path, 1024, "NONE", encrypt=False)
    assert r["ok"] and r["bytes"] == 1 << 30
    assert r["peak_write_kib"] - r["baseline_kib"] < GROWTH_LIMIT_KIB, r
    assert r["peak_read_kib"] - r["baseline_kib"] < GROWTH_LIMIT_KIB, r
