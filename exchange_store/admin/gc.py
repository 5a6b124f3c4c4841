"""Collect what crashed coordinators and workers leave behind in exchange and snapshot storage.

Trino and openLooKeng rely on a bucket lifecycle rule for this; ``exchange-store gc`` does it
with the knowledge of the layout and of the leases:

* an exchange whose lease (every copy of it) expired more than ``older_than`` ago, and under
  which nothing was modified for ``older_than``, is deleted from every base directory, with any
  incomplete multipart upload under it;
* an exchange directory without a lease (a crash between creating the directory and writing
  the lease) is deleted when nothing under it was modified for ``older_than`` and at least
  one lease TTL (``exchange.lease-ttl``), whatever ``older_than`` says: an exchange being
  created has no lease for a moment;
* a live exchange (any fresh lease copy) is never touched, not even the attempts of crashed
  workers inside it: the owner's ``close()`` removes those;
* pending snapshots whose deadline passed and whose lease expired are expired (their partial
  state deleted), and completed checkpoints beyond the retention count (left by a crash between
  completion and retention) are deleted; completed snapshots retention keeps and savepoints
  are never deleted;
* incomplete multipart uploads (local: ``*.partial`` files) older than ``older_than`` and at
  least one lease TTL are aborted under every base directory, except under live exchanges and
  live pending snapshots, whose leases are read again right before each abort (a slow
  writer's upload is never cut off, nor one of an exchange created during the pass).

So ``--older-than 0s`` is safe beside live queries: it only shortens how long a dead owner's
things are kept, never what counts as dead.

Safe to run from several machines at once: every delete is idempotent, the lease is read again
right before each delete, and the listing a delete relies on is always taken after that lease
check. Storage failures on one item are reported and the others proceed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from exchange_store.admin.inventory import (
    ExchangeInfo,
    find_exchanges,
    lease_state,
    newest_mtime,
    refresh,
)
from exchange_store.admin.report import GcFailure, GcItem, GcResult, format_age
from exchange_store.admin.snapshots import SnapshotView
from exchange_store.admin.storage import ExchangeStorage
from exchange_store.errors import ConfigurationError, StorageError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.ids import ID_PATTERN

__all__ = [
    "DEFAULT_OLDER_THAN",
    "GarbageCollector",
    "GcItem",
    "GcResult",
    "format_age",
]

DEFAULT_OLDER_THAN = 3600.0


@dataclass(frozen=True, slots=True)
class _Verdict:
    collect: bool
    live: bool
    age: float | None
    size: int
    reason: str
    gone: bool = False


@dataclass
class GarbageCollector:
    """One garbage collection pass over exchange and snapshot storage.

    Attributes:
        exchanges: The exchange storage (client and base directories), or None.
        snapshots: The snapshot store view, or None.
        older_than: Seconds a dead exchange's lease must have been expired (or a lease-less
            one untouched), and age of multipart uploads to abort.
        dry_run: Report, delete nothing.
        clock: Time source.
        on_item: Called with each item as it is collected (progress output).
    """

    exchanges: ExchangeStorage | None
    snapshots: SnapshotView | None = None
    older_than: float = DEFAULT_OLDER_THAN
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    on_item: Callable[[GcItem], None] | None = None
    _items: list[GcItem] = field(default_factory=list, init=False)
    _failures: list[GcFailure] = field(default_factory=list, init=False)
    _live: set[str] = field(default_factory=set, init=False)

    def run(self) -> GcResult:
        """Collect everything that is garbage now.

        Raises:
            StorageError: a base directory could not be listed (the message names it).
        """
        if self.older_than < 0:
            raise ValueError("older_than must not be negative")
        self._check_disjoint()
        self._items = []
        self._failures = []
        self._live = set()
        live = kept = aborted = 0
        if self.exchanges is not None:
            live, kept = self._collect_exchanges(self.exchanges)
        if self.snapshots is not None:
            self._collect_snapshots(self.snapshots)
        if not self.dry_run:
            for client, roots in self._upload_targets():
                aborted += self._abort_uploads(client, roots)
        return GcResult(
            items=tuple(self._items),
            failures=tuple(self._failures),
            dry_run=self.dry_run,
            live_exchanges=live,
            kept_exchanges=kept,
            uploads_aborted=aborted,
        )

    def _check_disjoint(self) -> None:
        """Refuse to run when exchange and snapshot base directories overlap.

        Their layouts differ; one collector reading the other's files could take a
        snapshot's lease for an exchange's.
        """
        if self.exchanges is None or self.snapshots is None:
            return

        def inside(a: str, b: str) -> bool:
            return a == b or a.startswith(b.rstrip("/") + "/")

        for e in self.exchanges.roots:
            for s in self.snapshots.roots:
                if inside(e, s) or inside(s, e):
                    raise ConfigurationError(
                        f"exchange base directory {e} and snapshot base directory {s} "
                        "overlap; give each its own directory (gc refuses to guess)"
                    )

    # ------------------------------------------------------------------ exchanges

    def _floor(self) -> float:
        """The least idle time of anything collected without a dead owner's lease to show.

        ``older_than``, but never less than one lease TTL: an exchange (or snapshot) being
        created has its directory a moment before its lease.
        """
        ttl = self.exchanges.lease_ttl if self.exchanges is not None else 0.0
        if self.snapshots is not None:
            ttl = max(ttl, self.snapshots.lease_ttl)
        return max(self.older_than, ttl)

    def _verdict(self, client: FileSystemClient, info: ExchangeInfo) -> _Verdict:
        now = self.clock()
        state = lease_state(info, now)
        if state == "live":
            return _Verdict(False, True, None, 0, "live")
        newest, size, _files = newest_mtime(client, info.dirs)
        if newest is None:  # nothing left: closed (or collected elsewhere) since the listing
            return _Verdict(False, False, None, 0, "gone", gone=True)
        idle = now - newest
        if idle < self.older_than:
            return _Verdict(False, False, idle, size, f"modified {format_age(idle)} ago")
        lease = info.lease
        if lease is not None:
            dead_for = now - lease.expires_at
            if dead_for < self.older_than:
                return _Verdict(False, False, dead_for, size, "lease expired recently")
            reason = (
                f"lease of {lease.owner!r} (pid {lease.pid} on {lease.host}) "
                f"expired {format_age(dead_for)} ago"
            )
            return _Verdict(True, False, dead_for, size, reason)
        what = "unreadable lease" if info.unreadable_leases else "no lease"
        if idle < self._floor():
            return _Verdict(
                False, False, idle, size, f"{what} yet, modified {format_age(idle)} ago"
            )
        return _Verdict(True, False, idle, size, f"{what}, untouched for {format_age(idle)}")

    def _collect_exchanges(self, storage: ExchangeStorage) -> tuple[int, int]:
        client = storage.client
        live = kept = 0
        emptied: set[str] = set()
        for info in find_exchanges(client, storage.roots, only_empty_ok=True):
            name = f"{info.query_id}/{info.exchange_id}"
            try:
                verdict = self._verdict(client, info)
                if verdict.collect and not self.dry_run:
                    # Re-check right before deleting: a fresh lease read, then a fresh listing.
                    info = refresh(client, info)
                    verdict = self._verdict(client, info)
                    if verdict.collect:
                        for d in info.dirs:
                            if client.supports_multipart_cleanup:
                                client.abort_multipart_uploads(d, None)
                            client.delete_recursive(d)
                            emptied.add(d.rstrip("/").rsplit("/", 1)[0])
            except StorageError as exc:
                self._failures.append(GcFailure(name, str(exc)))
                continue
            if verdict.live:
                live += 1
                self._live.update(info.dirs)
            elif verdict.gone:
                continue
            elif not verdict.collect:
                kept += 1
            else:
                self._add(
                    GcItem(
                        "exchange",
                        name,
                        info.dirs,
                        verdict.size,
                        verdict.age,
                        verdict.reason,
                        not self.dry_run,
                    )
                )
        if not self.dry_run:
            self._remove_empty_query_dirs(client, storage.roots, emptied)
        return live, kept

    def _remove_empty_query_dirs(
        self, client: FileSystemClient, roots: Sequence[str], emptied: set[str]
    ) -> None:
        """Remove empty query directories (local filesystems only, never recursively).

        Those this run emptied go at once; others only when old, so a query that has just
        created its directory keeps it.
        """
        if client.scheme != "file":
            return  # object stores have no empty directories
        now = self.clock()
        for root in roots:
            try:
                entries = client.list(root)
            except StorageError:
                continue
            for q in entries:
                if not q.is_dir or ID_PATTERN.fullmatch(q.name) is None:
                    continue
                fresh = q.mtime is not None and now - q.mtime < self._floor()
                if fresh and q.path not in emptied:
                    continue
                native = q.path[len("file://") :] if q.path.startswith("file://") else q.path
                # rmdir fails on a non-empty directory: a query that just created an exchange
                # in it keeps it.
                with contextlib.suppress(OSError):
                    os.rmdir(native)

    # ------------------------------------------------------------------ snapshots

    def _collect_snapshots(self, view: SnapshotView) -> None:
        now = self.clock()
        for item in view.collect(
            now,
            dry_run=self.dry_run,
            failures=self._failures,
            older_than=self.older_than,
            live=self._live,
        ):
            self._add(item)

    # ------------------------------------------------------------------ uploads

    def _upload_targets(self) -> list[tuple[FileSystemClient, tuple[str, ...]]]:
        targets: list[tuple[FileSystemClient, tuple[str, ...]]] = []
        if self.exchanges is not None:
            targets.append((self.exchanges.client, self.exchanges.roots))
        if self.snapshots is not None:
            targets.append((self.snapshots.client, self.snapshots.roots))
        return targets

    def _upload_prefixes(self, client: FileSystemClient, root: str) -> list[str]:
        """Where to abort old uploads under ``root`` without touching a live owner's.

        The whole root when nothing under it is live; otherwise each first-level directory
        (query or job) with nothing live under it, and within those that hold something live,
        each second-level directory (exchange or snapshot) that is not live itself. Uploads
        under a prefix with no object at all are then left for a pass when the root is quiet.
        """

        def holds_live(path: str) -> bool:
            prefix = path.rstrip("/") + "/"
            return any(p == path or p.startswith(prefix) for p in self._live)

        if not holds_live(root):
            return [root]
        out: list[str] = []
        for first in client.list(root):
            if not first.is_dir:
                continue
            if not holds_live(first.path):
                out.append(first.path)
                continue
            out.extend(
                second.path
                for second in client.list(first.path)
                if second.is_dir and not holds_live(second.path)
            )
        return out

    def _live_now(self, client: FileSystemClient, prefix: str) -> bool:
        """Whether an exchange under ``prefix`` holds a fresh lease now (a fresh read)."""
        if self.exchanges is None or client is not self.exchanges.client:
            return False
        roots = [r for r in self.exchanges.roots if prefix == r or prefix.startswith(r + "/")]
        now = self.clock()
        under = prefix.rstrip("/") + "/"
        return any(
            lease_state(info, now) == "live"
            and any(d == prefix or d.startswith(under) for d in info.dirs)
            for info in find_exchanges(client, roots, only_empty_ok=True)
        )

    def _abort_uploads(self, client: FileSystemClient, roots: Sequence[str]) -> int:
        if not client.supports_multipart_cleanup:
            return 0
        total = 0
        older = self._floor()
        for root in roots:
            try:
                prefixes = self._upload_prefixes(client, root)
                # Leases are read again right before each abort: an exchange created since
                # the pass began is live too.
                n = sum(
                    client.abort_multipart_uploads(p, older)
                    for p in prefixes
                    if not self._live_now(client, p)
                )
            except StorageError as exc:
                self._failures.append(GcFailure(f"uploads under {root}", str(exc)))
                continue
            if n:
                total += n
                self._add(
                    GcItem(
                        "uploads",
                        f"{n} incomplete upload(s)",
                        (root,),
                        0,
                        None,
                        f"older than {format_age(older)}",
                        True,
                    )
                )
        return total

    def _add(self, item: GcItem) -> None:
        self._items.append(item)
        if self.on_item is not None:
            self.on_item(item)
