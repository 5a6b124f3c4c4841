"""Transient storage faults under the demo's exchange, injected by the fault client.

The demo's exchange manager gets its configured filesystem client wrapped in
:class:`~exchange_store.testing.faults.FaultyFileSystemClient` (``fs.client.type=faulty``).
In every process that uses it (each worker attempt and the coordinator), the first manifest
publish meets two ``503 SlowDown`` replies and the first ranged read a ``500 InternalError``:
real failures of real storage calls, which the client's retries absorb. Every operation is
logged to a file so the coordinator can count, after the run, what was injected in workers
that have since exited (or were SIGKILLed).
"""

from __future__ import annotations

import os
from collections import Counter

from exchange_store.config import load_etc
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.scheduler.model import StorageSpec
from exchange_store.testing.faults import Fault, FaultPlan, faulty_properties, read_op_log_file

__all__ = ["STORAGE_FAULTS", "count_injected", "with_storage_faults"]

STORAGE_FAULTS = FaultPlan(
    (
        Fault("throttle", at=0, times=2, ops=("write_exclusive",)),
        Fault("server-error", at=0, times=1, ops=("read_range",)),
    )
)


def with_storage_faults(etc_dir: str, op_log_file: str) -> StorageSpec:
    """The etc directory's storage, with the exchange's client wrapped in the fault client.

    Args:
        etc_dir: The etc directory (the snapshot store is used from it unchanged).
        op_log_file: Where every process appends its storage operations.

    Raises:
        ConfigurationError: the etc directory is invalid.
    """
    spec = StorageSpec.from_etc(etc_dir)
    etc = load_etc(spec.etc_dir or etc_dir)
    pf = etc.exchange_manager
    if pf is None:
        return spec
    config = ExchangeManagerConfig.from_properties(pf.values, pf.path, pf.lines, pf.origins)
    name = config.filesystem_name
    inner = (
        dict(etc.filesystems[name].values)
        if name in etc.filesystems
        else {"fs.client.type": "local"}
    )
    values = dict(pf.values)
    values["exchange-filesystem-type"] = name
    values["exchange.base-directories"] = ",".join(config.base_directories)
    return StorageSpec(
        etc_dir=spec.etc_dir,
        exchange_properties=values,
        exchange_filesystems={
            name: faulty_properties(inner, STORAGE_FAULTS, op_log_file=op_log_file)
        },
    )


def count_injected(op_log_file: str) -> Counter[str]:
    """Faults injected, by kind, according to the operation log (missing log: none)."""
    if not os.path.exists(op_log_file):
        return Counter()
    return Counter(r.fault for r in read_op_log_file(op_log_file) if r.fault)
