"""Which completed snapshots to delete: a small, chainable, immutable builder.

Modelled on pyiceberg's ``ExpireSnapshots``: rules narrow down the checkpoints that may go,
explicit ids add snapshots that must go, savepoints are protected from rules, and the newest
snapshot of a job is never removed by a rule::

    RetentionPolicy().keep_last(5)                           # what complete() applies
    RetentionPolicy().older_than(time.time() - 86400).keep_last(2)
    RetentionPolicy().by_id(3, 4)                            # explicit: savepoints too
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from exchange_store.errors import InvalidArgumentError
from exchange_store.snapshots.model import Snapshot

__all__ = ["RetentionPolicy"]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What to delete among a job's completed snapshots.

    Attributes:
        retain_last: Keep at least the newest this many checkpoints (None: no such rule).
        expire_before: Only checkpoints completed before this time may go (None: no rule).
        ids: Snapshots deleted whatever the rules say (savepoints included).
        protect_savepoints: Rules never select savepoints.
    """

    retain_last: int | None = None
    expire_before: float | None = None
    ids: frozenset[int] = frozenset()
    protect_savepoints: bool = True

    def keep_last(self, n: int) -> RetentionPolicy:
        """Keep the newest ``n`` checkpoints (n >= 1); older ones may go."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"keep_last({n!r}): must be an integer >= 1")
        return replace(self, retain_last=n)

    def older_than(self, timestamp: float) -> RetentionPolicy:
        """Only checkpoints completed before ``timestamp`` (epoch seconds) may go."""
        return replace(self, expire_before=float(timestamp))

    def by_id(self, *snapshot_ids: int) -> RetentionPolicy:
        """Delete these snapshots explicitly (savepoints too)."""
        return replace(self, ids=self.ids | frozenset(snapshot_ids))

    def including_savepoints(self) -> RetentionPolicy:
        """Let the rules select savepoints as well (they are protected by default)."""
        return replace(self, protect_savepoints=False)

    def select(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        """The snapshots to delete among ``snapshots`` (completed ones of one job), oldest first."""
        ordered = sorted(snapshots, key=lambda s: s.snapshot_id)
        doomed: dict[int, Snapshot] = {
            s.snapshot_id: s for s in ordered if s.snapshot_id in self.ids
        }
        if self.retain_last is not None or self.expire_before is not None:
            candidates = [s for s in ordered if not (s.savepoint and self.protect_savepoints)]
            kept_by_count = set()
            if self.retain_last is not None:
                checkpoints = [s for s in candidates if not s.savepoint]
                kept_by_count = {s.snapshot_id for s in checkpoints[-self.retain_last :]}
            newest = ordered[-1].snapshot_id if ordered else None
            for s in candidates:
                if s.snapshot_id in kept_by_count or s.snapshot_id == newest:
                    continue
                if self.expire_before is not None and s.completed_at >= self.expire_before:
                    continue
                doomed.setdefault(s.snapshot_id, s)
        return [doomed[k] for k in sorted(doomed)]
