"""``exchange-store init [DIR]``: write the shipped configuration to DIR (default ``etc``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from exchange_store.defaults import DEFAULT_ETC
from exchange_store.errors import ConfigurationError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``init`` subcommand."""
    p = subparsers.add_parser(
        "init",
        help="write the shipped configuration (etc/) to start from",
        description="Copy the configuration installed with the package into DIR: the "
        "exchange manager, snapshot store and scheduler files and the filesystem clients "
        "(with S3 and HDFS examples). Existing files are never overwritten.",
    )
    p.add_argument("dir", nargs="?", default="etc", metavar="DIR", help="target (default: etc)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Copy the files; 0 when written, 2 when DIR already holds any of them."""
    target = Path(args.dir)
    files = sorted(p.relative_to(DEFAULT_ETC) for p in DEFAULT_ETC.rglob("*") if p.is_file())
    clash = [str(target / f) for f in files if (target / f).exists()]
    if clash:
        raise ConfigurationError(
            f"{clash[0]}: already exists; init never overwrites (remove it, or init another "
            "directory)"
        )
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEFAULT_ETC / name, target / name)
        print(f"wrote {target / name}")
    print(f"next: exchange-store config check --etc {target}; exchange-store demo --etc {target}")
    return 0
