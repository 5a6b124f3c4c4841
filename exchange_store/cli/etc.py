"""Where a command's configuration comes from: ``--etc DIR``, ``./etc``, or the shipped defaults.

A newcomer's first command works in any directory: without ``--etc`` and without an ``etc/``
directory here, commands run on the configuration installed with the package (a local spool
under ``./var``) and say so. An ``--etc DIR`` that does not exist is an error that names the
command creating it.
"""

from __future__ import annotations

import argparse
import os
import sys

from exchange_store.defaults import DEFAULT_ETC
from exchange_store.errors import ConfigurationError

__all__ = ["add_etc_argument", "resolve_etc"]


def add_etc_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--etc DIR`` option every command shares."""
    parser.add_argument(
        "--etc",
        default=None,
        help="configuration directory (default: ./etc, else the shipped defaults)",
    )


def resolve_etc(value: str | None, *, quiet: bool = False) -> str:
    """The etc directory to use.

    Raises:
        ConfigurationError: ``--etc`` names a directory that does not exist.
    """
    if value is not None:
        if not os.path.isdir(value):
            raise ConfigurationError(
                f"{value}: configuration directory not found; write one with: "
                f"exchange-store init {value}"
            )
        return value
    if os.path.isdir("etc"):
        return "etc"
    if not quiet:
        print(
            f"no etc/ here: using the shipped configuration ({DEFAULT_ETC}); data goes under "
            f"{os.path.abspath('var')} (exchange-store init etc writes a copy to edit)",
            file=sys.stderr,
        )
    return str(DEFAULT_ETC)
