"""What a gc run reports: items collected, failures, totals, and how ages are shown.

Shared by the collector (:mod:`exchange_store.admin.gc`), the snapshot view that contributes
snapshot items (:mod:`exchange_store.admin.snapshots`) and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["GcFailure", "GcItem", "GcResult", "ItemKind", "format_age"]

ItemKind = Literal["exchange", "pending-snapshot", "checkpoint", "snapshot-dir", "uploads"]


@dataclass(frozen=True, slots=True)
class GcItem:
    """One thing collected (or, in a dry run, that would be).

    Attributes:
        kind: ``exchange``, ``pending-snapshot``, ``checkpoint``, ``snapshot-dir`` or
            ``uploads``.
        name: What it is (``q1/stage-1``, ``job-7/chk-3``).
        paths: Its directories.
        size: Bytes it held.
        age: Seconds since its lease expired or it was last modified (None when unknown).
        reason: Why it is garbage.
        deleted: Whether it was deleted (False in a dry run).
    """

    kind: ItemKind
    name: str
    paths: tuple[str, ...]
    size: int
    age: float | None
    reason: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class GcFailure:
    """An item that could not be collected: the storage error names the path."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class GcResult:
    """What a run did.

    Attributes:
        items: Everything collected (or that would be, in a dry run).
        failures: Items whose deletion failed.
        dry_run: Nothing was deleted.
        live_exchanges: Exchanges left alone because their lease is fresh.
        kept_exchanges: Dead or lease-less exchanges not old enough yet.
        uploads_aborted: Incomplete multipart uploads (or local partial files) aborted.
    """

    items: tuple[GcItem, ...]
    failures: tuple[GcFailure, ...] = ()
    dry_run: bool = False
    live_exchanges: int = 0
    kept_exchanges: int = 0
    uploads_aborted: int = 0

    @property
    def total_bytes(self) -> int:
        """Bytes of all items."""
        return sum(i.size for i in self.items)


def format_age(seconds: float | None) -> str:
    """``3h12m``, ``4m05s``, ``12s`` or ``-``."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
