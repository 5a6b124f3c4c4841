"""The ``exchange-store`` command: parse arguments, then hand over to one subcommand module.

Each subcommand lives in ``exchange_store/cli/<name>.py`` with ``register(subparsers)``, which
adds its parser and sets ``func`` to a ``run(args) -> int``. argparse (standard library) does
the parsing: it is well kept, has no dependencies and is all the CLI needs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from exchange_store.errors import ExchangeStoreError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS = ("demo", "bench", "gc", "ls", "keygen", "init", "config")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand that is installed."""
    parser = argparse.ArgumentParser(
        prog="exchange-store",
        description="Storage for fault-tolerant distributed query execution.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"exchange_store.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"exchange_store.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ExchangeStoreError as exc:
        print(f"exchange-store {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
