"""Small helpers shared by the admin commands: argument types and output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from exchange_store.config import format_data_size, parse_data_size, parse_duration
from exchange_store.errors import ConfigurationError

__all__ = ["console", "duration_arg", "human_size", "print_json", "size_arg"]


def _arg_type(parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(f"{what}: {exc}") from None

    convert.__name__ = what
    return convert


duration_arg = _arg_type(parse_duration, "duration")
size_arg = _arg_type(parse_data_size, "size")


def human_size(n: int | float) -> str:
    """``1.5GB``-style size (binary units), ``0B`` for zero."""
    return format_data_size(n) if n else "0B"


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (tests capture them), never wrapping narrowly."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
