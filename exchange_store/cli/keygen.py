"""``exchange-store keygen PATH``: create an encryption key file (snapshot store, exchange)."""

from __future__ import annotations

import argparse
from pathlib import Path

from exchange_store.snapshots.keys import KEY_ENV_VAR, generate_key_file, load_key_file

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``keygen`` subcommand."""
    parser = subparsers.add_parser(
        "keygen",
        help="create an encryption key file (32 random bytes, hex, mode 0600)",
        description=(
            "Create PATH holding a new random AES-256 key as 64 hex characters, readable by "
            "its owner only. Refuses to overwrite an existing file. Point "
            f"snapshot.encryption-key-file (or export it as {KEY_ENV_VAR}) or "
            "exchange.encryption-key-file at it."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="the key file to create")
    parser.add_argument(
        "--exist-ok",
        action="store_true",
        help="succeed without touching PATH when it already holds a valid key (for scripts)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Create the key file; returns the exit code."""
    if args.exist_ok and Path(args.path).exists():
        load_key_file(args.path)  # raises ConfigurationError unless it is a valid key
        print(f"kept the existing encryption key in {args.path}")
        return 0
    path = generate_key_file(args.path)
    print(f"wrote a new encryption key to {path} (mode 0600)")
    return 0
