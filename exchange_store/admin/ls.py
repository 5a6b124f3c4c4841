"""What ``exchange-store ls`` shows: exchanges with their attempts, jobs with their snapshots."""

from __future__ import annotations

import time
from typing import Any

from exchange_store.admin.inventory import describe_exchange, find_exchanges, lease_state
from exchange_store.admin.snapshots import SnapshotView
from exchange_store.admin.storage import ExchangeStorage

__all__ = ["list_exchanges", "list_storage"]


def list_exchanges(storage: ExchangeStorage, now: float | None = None) -> list[dict[str, Any]]:
    """Every exchange under the base directories, as JSON-ready dicts."""
    now = time.time() if now is None else now
    out = []
    for found in find_exchanges(storage.client, storage.roots):
        info = describe_exchange(storage.client, found)
        lease = info.lease
        out.append(
            {
                "query_id": info.query_id,
                "exchange_id": info.exchange_id,
                "state": lease_state(info, now),
                "lease": None
                if lease is None
                else {
                    "owner": lease.owner,
                    "host": lease.host,
                    "pid": lease.pid,
                    "created_at": lease.created_at,
                    "renewed_at": lease.renewed_at,
                    "ttl": lease.ttl,
                    "expires_at": lease.expires_at,
                },
                "directories": list(info.dirs),
                "size": info.size,
                "task_partitions": [
                    {
                        "task_partition": tp.task_partition,
                        "size": tp.size,
                        "attempts": [
                            {
                                "attempt_id": a.attempt_id,
                                "committed": a.committed,
                                "files": a.files,
                                "size": a.size,
                                "path": a.path,
                            }
                            for a in tp.attempts
                        ],
                    }
                    for tp in info.task_partitions
                ],
            }
        )
    return out


def list_storage(
    exchanges: ExchangeStorage | None, snapshots: SnapshotView | None, now: float | None = None
) -> dict[str, Any]:
    """``{"exchanges": [...], "jobs": [...]}`` for whatever is configured."""
    return {
        "exchanges": [] if exchanges is None else list_exchanges(exchanges, now),
        "jobs": [] if snapshots is None else snapshots.list_jobs(now),
    }
