"""Where the suite finds the public classes (exported from the package or its modules)."""

from __future__ import annotations

import importlib
from typing import Any


def public(name: str, *modules: str) -> Any:
    """``exchange_store.<name>``, else the first of ``modules`` that defines it."""
    for module in ("exchange_store", *modules):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ImportError(f"{name} is not available yet (looked in exchange_store, {modules})")


def exchange_manager() -> Any:
    return public("ExchangeManager", "exchange_store.exchange", "exchange_store.exchange.manager")


def exchange_context() -> Any:
    return public("ExchangeContext", "exchange_store.exchange", "exchange_store.exchange.handles")


def snapshot_store() -> Any:
    return public("SnapshotStore", "exchange_store.snapshots", "exchange_store.snapshots.store")
