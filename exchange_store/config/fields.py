"""Checks shared by the components' configurations (base directories, error locations)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exchange_store.errors import ConfigurationError

__all__ = ["Locator", "absolute_location", "base_directories", "filesystem_name"]


@dataclass(frozen=True, slots=True)
class Locator:
    """Says where a key was set, for error messages: ``file:line`` or the variable's name."""

    source: str
    lines: Mapping[str, int] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """``etc/x.properties:12``, ``environment variable X`` or the file alone."""
        if key in self.origins:
            return self.origins[key]
        return f"{self.source}:{self.lines[key]}" if key in self.lines else self.source


def absolute_location(path: str) -> str:
    """Resolve a relative local path against the current directory; URIs are kept."""
    if "://" in path:
        return path.rstrip("/") if not path.endswith("://") else path
    return os.path.abspath(path)


def base_directories(bases: Sequence[str], key: str, where: str) -> tuple[str, ...]:
    """Validate a parsed base-directories list and make its entries absolute.

    Raises:
        ConfigurationError: the list is empty or names a directory twice.
    """
    if not bases:
        raise ConfigurationError(
            f"{where}: {key} is empty; allowed: a comma-separated list of paths or URIs"
        )
    resolved = tuple(absolute_location(b) for b in bases)
    if len(set(resolved)) != len(resolved):
        raise ConfigurationError(f"{where}: {key} lists a directory twice: {', '.join(bases)}")
    return resolved


def filesystem_name(value: str, key: str, where: str) -> str:
    """Validate the NAME of an ``etc/filesystem/NAME.properties`` client.

    Raises:
        ConfigurationError: empty, or a path rather than a name.
    """
    name = value.strip()
    if not name or "/" in name or name.startswith("."):
        raise ConfigurationError(
            f"{where}: {key}={name!r}: allowed: the NAME of an etc/filesystem/NAME.properties file"
        )
    return name
