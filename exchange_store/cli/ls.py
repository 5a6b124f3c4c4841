"""``exchange-store ls``: exchanges (leases, task partitions, attempts) and snapshots."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.table import Table

from exchange_store.admin.gc import format_age
from exchange_store.admin.ls import list_storage
from exchange_store.admin.render import console, human_size, print_json
from exchange_store.admin.snapshots import try_snapshot_view
from exchange_store.admin.storage import exchange_storage_from_etc
from exchange_store.cli.etc import add_etc_argument, resolve_etc

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``ls`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "ls",
        help="list exchanges (leases, attempts, sizes) and snapshots",
        description="List what is in exchange and snapshot storage.",
    )
    add_etc_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the listing; 0 on success."""
    args.etc = resolve_etc(args.etc)
    exchanges = exchange_storage_from_etc(args.etc)
    snapshots, skipped = try_snapshot_view(args.etc)
    now = time.time()
    try:
        listing = list_storage(exchanges, snapshots, now)
    finally:
        if snapshots is not None:
            snapshots.close()
        if exchanges is not None:
            exchanges.client.close()
    listing["warnings"] = [] if skipped is None else [skipped]
    if skipped is not None:
        print(f"exchange-store ls: {skipped}", file=sys.stderr)
    if args.json:
        print_json(listing)
        return 0
    out = console()
    table = Table(title="exchanges", title_justify="left")
    for col in ("exchange", "lease", "owner", "task partition", "attempts", "size"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for ex in listing["exchanges"]:
        lease = ex["lease"]
        state = ex["state"]
        if lease is not None:
            left = lease["expires_at"] - now
            state += f" ({'expires in' if left > 0 else 'expired'} {format_age(abs(left))}"
            state += ")" if left > 0 else " ago)"
        owner = "-" if lease is None else f"{lease['owner']} (pid {lease['pid']}@{lease['host']})"
        first = [f"{ex['query_id']}/{ex['exchange_id']}", state, owner]
        tps = ex["task_partitions"] or [None]
        for i, tp in enumerate(tps):
            head = first if i == 0 else ["", "", ""]
            if tp is None:
                table.add_row(*head, "-", "-", human_size(ex["size"]))
                continue
            attempts = " ".join(
                f"{a['attempt_id']}:{'committed' if a['committed'] else 'uncommitted'}"
                f"({human_size(a['size'])})"
                for a in tp["attempts"]
            )
            table.add_row(*head, str(tp["task_partition"]), attempts, human_size(tp["size"]))
    out.print(table)
    jobs = Table(title="snapshots", title_justify="left")
    for col in ("job", "snapshot", "kind", "state", "tasks", "size", "age"):
        jobs.add_column(col, justify="right" if col in ("size", "age", "snapshot") else "left")
    for job in listing["jobs"]:
        for i, s in enumerate(job["snapshots"] or [None]):
            name = job["job_id"] if i == 0 else ""
            if s is None:
                jobs.add_row(name, "-", "-", "-", "-", "-", "-")
                continue
            jobs.add_row(
                name,
                str(s["snapshot_id"]),
                s["kind"],
                s["state"],
                str(len(s["task_ids"])),
                human_size(s["size"]),
                format_age(now - s["created_at"]) if s["created_at"] else "-",
            )
    out.print(jobs)
    n_att = sum(len(tp["attempts"]) for ex in listing["exchanges"] for tp in ex["task_partitions"])
    out.print(
        f"{len(listing['exchanges'])} exchange(s), {n_att} attempt(s), "
        f"{human_size(sum(ex['size'] for ex in listing['exchanges']))}; "
        f"{len(listing['jobs'])} job(s), "
        f"{sum(len(j['snapshots']) for j in listing['jobs'])} snapshot(s)"
    )
    return 0
