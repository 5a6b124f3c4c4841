"""``exchange-store gc``: delete what crashed coordinators and workers left behind."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from typing import Any

from rich.table import Table

from exchange_store.admin.gc import (
    DEFAULT_OLDER_THAN,
    GarbageCollector,
    GcFailure,
    GcResult,
    format_age,
)
from exchange_store.admin.render import console, duration_arg, human_size, print_json
from exchange_store.admin.snapshots import try_snapshot_view
from exchange_store.admin.storage import exchange_storage_from_etc
from exchange_store.cli.etc import add_etc_argument, resolve_etc

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``gc`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "gc",
        help="delete abandoned exchanges, expired pending snapshots and stale uploads",
        description=(
            "Delete exchanges whose lease expired more than --older-than ago (or that have no "
            "lease and were untouched that long), expired pending snapshots, checkpoints "
            "beyond retention, and incomplete multipart uploads older than --older-than. "
            "Live exchanges and snapshots retention keeps are never touched. Safe to run "
            "from several machines at once."
        ),
    )
    add_etc_argument(p)
    p.add_argument(
        "--older-than",
        type=duration_arg,
        default=DEFAULT_OLDER_THAN,
        metavar="DURATION",
        help="grace period such as 10m, 1h, 2d (default: 1h)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def result_to_dict(result: GcResult) -> dict[str, Any]:
    """The JSON form of a run."""
    return {
        "dry_run": result.dry_run,
        "items": [asdict(i) | {"paths": list(i.paths)} for i in result.items],
        "failures": [asdict(f) for f in result.failures],
        "total_items": len(result.items),
        "total_bytes": result.total_bytes,
        "live_exchanges": result.live_exchanges,
        "kept_exchanges": result.kept_exchanges,
        "uploads_aborted": result.uploads_aborted,
    }


def run(args: argparse.Namespace) -> int:
    """Run one collection pass; 0 when every item was collected, 1 when some failed."""
    args.etc = resolve_etc(args.etc)
    exchanges = exchange_storage_from_etc(args.etc)
    snapshots, skipped = try_snapshot_view(args.etc)
    out = console()
    collector = GarbageCollector(
        exchanges=exchanges,
        snapshots=snapshots,
        older_than=args.older_than,
        dry_run=args.dry_run,
    )
    try:
        result = collector.run()
    finally:
        if snapshots is not None:
            snapshots.close()
        if exchanges is not None:
            exchanges.client.close()
    if skipped is not None:
        result = replace(result, failures=(*result.failures, GcFailure("snapshots", skipped)))
    if args.json:
        print_json(result_to_dict(result))
    else:
        if result.items:
            verb = "would delete" if result.dry_run else "deleted"
            table = Table(title=f"gc: {verb}", title_justify="left")
            for col in ("kind", "name", "size", "age", "reason"):
                table.add_column(col, justify="right" if col in ("size", "age") else "left")
            for item in result.items:
                table.add_row(
                    item.kind, item.name, human_size(item.size), format_age(item.age), item.reason
                )
            out.print(table)
        verb = "would delete" if result.dry_run else "deleted"
        out.print(
            f"gc: {verb} {len(result.items)} item(s), {human_size(result.total_bytes)}; "
            f"{result.live_exchanges} live exchange(s) untouched, "
            f"{result.kept_exchanges} not old enough"
            + ("" if result.dry_run else f", {result.uploads_aborted} upload(s) aborted")
        )
    for failure in result.failures:
        print(f"exchange-store gc: {failure.name}: {failure.error}", file=sys.stderr)
    return 1 if result.failures else 0
