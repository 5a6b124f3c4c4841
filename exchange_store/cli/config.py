"""``exchange-store config check [--etc DIR]``: validate a configuration directory.

Every file is loaded as the components load it (exchange manager with its filesystem client and
key file, snapshot store, scheduler); then the effective configuration is printed, key by key,
with where each value comes from (file and line, environment variable, or default) and secrets
masked. Exit 0 when everything loads, 2 naming the file, key and fix otherwise.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

from exchange_store.cli.etc import add_etc_argument, resolve_etc
from exchange_store.config import Schema, format_data_size, load_etc
from exchange_store.config.properties import PropertiesFile
from exchange_store.errors import ExchangeStoreError

__all__ = ["register", "run_check"]

_MASK = "********"
# Storage options whose values are credentials (fsspec.option.account_key, .token, ...).
_SECRET_OPTION = re.compile(r"(?i)key|secret|token|password|credential|connection|sas")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config check``."""
    p = subparsers.add_parser("config", help="inspect the configuration")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="validate an etc directory and print the effective configuration",
        description="Load every configuration file as the components do and print the "
        "effective value of every key (secrets masked). Exit 0 when valid.",
    )
    add_etc_argument(check)
    check.set_defaults(func=run_check)


def _show(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "size" and isinstance(value, int):
        return format_data_size(value)
    if kind == "duration" and isinstance(value, int | float):
        return f"{value:g}s"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(map(str, value)) or "-"
    return str(value)


def _section(title: str, schema: Schema, pf: PropertiesFile | None) -> list[str]:
    values: Mapping[str, str] = pf.values if pf is not None else {}
    parsed = schema.parse(values, pf.path if pf is not None else title)
    lines = [f"[{title}]" + (f" {pf.path}" if pf is not None else " (not present: defaults)")]
    given = {schema.key(k).name: k for k in values if k in schema.names()}
    for key in schema.keys:
        name = given.get(key.name)
        where = pf.where(name) if pf is not None and name is not None else "default"
        if name is None and key.default is None:
            continue
        shown = _MASK if key.secret and parsed[key.name] else _show(parsed[key.name], key.kind)
        lines.append(f"  {key.name} = {shown}    ({where})")
    for name in sorted(values):
        if name not in schema.names():  # prefixed keys (fsspec.option.*)
            shown = _MASK if _SECRET_OPTION.search(name) else values[name]
            lines.append(f"  {name} = {shown}    ({pf.where(name) if pf else ''})")
    return lines


def _client_schema(values: Mapping[str, str]) -> Schema | None:
    from exchange_store.filesystems import _schemas

    kind = values.get("fs.client.type", "").strip().lower()
    return {
        "local": _schemas.LOCAL_SCHEMA,
        "s3": _schemas.S3_SCHEMA,
        "hdfs": _schemas.HDFS_SCHEMA,
        "fsspec": _schemas.FSSPEC_SCHEMA,
    }.get(kind)


def run_check(args: argparse.Namespace) -> int:
    """Validate and print; 0 when valid, 2 (with the problems) otherwise."""
    from exchange_store.exchange.config import EXCHANGE_MANAGER_SCHEMA
    from exchange_store.exchange.manager import ExchangeManager
    from exchange_store.scheduler.config import SCHEDULER_SCHEMA, SchedulerConfig
    from exchange_store.snapshots import SnapshotStore
    from exchange_store.snapshots.config import SNAPSHOT_STORE_SCHEMA

    etc_dir = resolve_etc(args.etc)
    etc = load_etc(etc_dir)
    out: list[str] = [f"configuration directory: {etc.root}"]
    problems: list[str] = []

    def attempt(what: str, fn: Any) -> None:
        try:
            fn()
        except ExchangeStoreError as exc:
            problems.append(f"{what}: {exc}")

    # (what, title, its file, how the component loads, its schema, checked without a file):
    # the scheduler runs on defaults; the other components exist only with their file.
    components: list[tuple[str, str, PropertiesFile | None, Any, Schema, bool]] = [
        (
            "exchange manager",
            "exchange-manager",
            etc.exchange_manager,
            lambda: ExchangeManager.from_etc(etc_dir).close(),
            EXCHANGE_MANAGER_SCHEMA,
            False,
        ),
        (
            "snapshot store",
            "snapshot-store",
            etc.snapshot_store,
            lambda: SnapshotStore.from_etc(etc_dir).close(),
            SNAPSHOT_STORE_SCHEMA,
            False,
        ),
        (
            "scheduler",
            "config",
            etc.scheduler,
            lambda: SchedulerConfig.from_etc(etc_dir),
            SCHEDULER_SCHEMA,
            True,
        ),
    ]
    for what, title, pf, load, schema, without_file in components:
        if pf is None and not without_file:
            continue
        attempt(what, load)
        attempt(what, lambda t=title, s=schema, p=pf: out.extend(_section(t, s, p)))
    for name, client_file in sorted(etc.filesystems.items()):
        client_schema = _client_schema(client_file.values)
        if client_schema is None:
            kind = client_file.values.get("fs.client.type", "")
            out.append(f"[filesystem {name}] {client_file.path}: fs.client.type={kind}")
            continue
        attempt(
            f"filesystem {name}",
            lambda s=client_schema, p=client_file, n=name: out.extend(
                _section(f"filesystem {n}", s, p)
            ),
        )
    print("\n".join(out))
    if problems:
        print("\nproblems:")
        for problem in problems:
            print(f"  {problem}")
        return 2
    print("\nconfiguration valid")
    return 0
