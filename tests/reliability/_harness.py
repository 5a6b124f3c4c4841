"""Shared helpers of the reliability suite: workloads, child processes, leftover checks."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from exchange_store.testing.faults import (
    FaultPlan,
    faulty_properties,
    read_op_log_file,
    register_faulty_filesystem,
)

from ._api import exchange_context, exchange_manager

SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT = 120

#: Small blocks and files so a small workload has several blocks and data files.
SMALL = {
    "exchange.block-size": "2kB",
    "exchange.sink-max-file-size": "12kB",
    "exchange.compression-codec": "LZ4",
    "exchange.lease-ttl": "30s",
}


def records_for(seed: int, partitions: int, count: int = 60) -> list[tuple[int, bytes]]:
    """Deterministic (partition, record) pairs: sizes 0 to ~1.5 kB, semi-compressible."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        size = rng.choice([0, 1, 7, 100, 700, 1500])
        body = (f"{seed}:{i}:".encode() + bytes(rng.getrandbits(3) for _ in range(size)))[:size]
        out.append((rng.randrange(partitions), body))
    return out


def expected_by_partition(records: Iterable[tuple[int, bytes]]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for p, r in records:
        out.setdefault(p, []).append(r)
    return {p: sorted(v) for p, v in out.items()}


def manager_properties(base_dirs: Sequence[str], **extra: str) -> dict[str, str]:
    props = {"exchange.base-directories": ",".join(base_dirs), **SMALL}
    props.update(extra)
    return props


def make_manager(base_dirs: Sequence[str], fs_props: Mapping[str, str], **extra: str) -> Any:
    return exchange_manager().from_properties(
        manager_properties(base_dirs, **extra), filesystems={"exchange": dict(fs_props)}
    )


def read_all(manager: Any, handles: Sequence[Any]) -> dict[int, list[bytes]]:
    """Every record per output partition, sorted (order is not part of the check here)."""
    out: dict[int, list[bytes]] = {}
    for handle in handles:
        source = manager.create_source([handle])
        source.no_more_source_handles()
        try:
            out.setdefault(handle.partition_id, []).extend(bytes(r) for r in source)
        finally:
            source.close()
    return {p: sorted(v) for p, v in out.items()}


# ---------------------------------------------------------------------- child processes


def _sink_child(
    manager_props: dict[str, str],
    fs_props: dict[str, str],
    instance: Any,
    records: list[tuple[int, bytes]],
) -> None:
    register_faulty_filesystem()
    manager = exchange_manager().from_properties(manager_props, filesystems={"exchange": fs_props})
    sink = manager.create_sink(instance)
    for partition, record in records:
        sink.add(partition, record)
    sink.finish()
    os._exit(0)


def run_sink_in_child(
    manager_props: Mapping[str, str],
    inner_fs_props: Mapping[str, str],
    instance: Any,
    records: list[tuple[int, bytes]],
    plan: FaultPlan,
    op_log_file: str | None = None,
) -> int | None:
    """Run one attempt in a spawned process whose client injects ``plan``; its exit code."""
    fs_props = faulty_properties(inner_fs_props, plan, op_log_file=op_log_file)
    proc = SPAWN.Process(
        target=_sink_child, args=(dict(manager_props), fs_props, instance, records)
    )
    proc.start()
    proc.join(CHILD_TIMEOUT)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
    return proc.exitcode


def count_ops(op_log_file: str) -> list[Any]:
    return read_op_log_file(op_log_file)


# ---------------------------------------------------------------------- leftovers


def local_leftovers(base: str) -> list[str]:
    """Every file under a local base directory (``.partial`` files included)."""
    return sorted(str(Path(d, f)) for d, _dirs, files in os.walk(base) for f in files)


def s3_leftovers(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Objects and incomplete multipart uploads under ``prefix``."""
    out = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    out += [f"upload:{u['Key']}" for u in uploads]
    return sorted(out)


def new_exchange(manager: Any, query_id: str, exchange_id: str, partitions: int, **kw: Any) -> Any:
    return manager.create_exchange(exchange_context()(query_id, exchange_id), partitions, **kw)
