r"""A reader for Java ``.properties`` files, following ``java.util.Properties.load``.

Rules kept from Java: natural lines end with ``\\n``, ``\\r`` or ``\\r\\n``; a logical line
continues onto the next when it ends with an odd number of backslashes, and the continuation's
leading white space is dropped; lines whose first non-blank character is ``#`` or ``!`` are
comments; the key ends at the first unescaped ``=``, ``:`` or white space, and one ``=`` or
``:`` (with white space around it) separates it from the value; ``\\t \\n \\r \\f`` and
``\\uXXXX`` are escapes, and a backslash before any other character stands for that character.

One deliberate difference: a key given twice is an error naming both lines (Java silently keeps
the last one, which hides typos in long files).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exchange_store.errors import ConfigurationError

__all__ = ["PropertiesFile", "load_properties_file", "parse_properties"]

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


@dataclass(frozen=True, slots=True)
class PropertiesFile:
    """The keys of one properties file, with where each came from.

    Attributes:
        path: The file's path (or a label such as ``<string>``), used in error messages.
        values: Key to value, in file order.
        lines: Key to the line number (1-based) where its logical line starts.
        origins: Keys whose value came from elsewhere (an environment variable), to that origin.
    """

    path: str
    values: dict[str, str]
    lines: dict[str, int] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """Describe where ``key`` was set: ``etc/x.properties:12`` or the variable's name."""
        if key in self.origins:
            return self.origins[key]
        if key in self.lines:
            return f"{self.path}:{self.lines[key]}"
        return self.path

    def get(self, key: str, default: str | None = None) -> str | None:
        """The raw value of ``key``, or ``default``."""
        return self.values.get(key, default)

    def with_overrides(
        self, overrides: Mapping[str, str], origin: Mapping[str, str]
    ) -> PropertiesFile:
        """A copy with ``overrides`` applied; ``origin`` says where each override came from."""
        values = dict(self.values)
        values.update(overrides)
        origins = dict(self.origins)
        origins.update({k: origin[k] for k in overrides})
        return PropertiesFile(self.path, values, dict(self.lines), origins)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(first_line_number, logical_line)`` for every non-comment, non-blank line."""
    natural = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(natural):
        start = i
        line = natural[i].lstrip(_WHITESPACE)
        i += 1
        if not line or line[0] in "#!":
            continue
        parts = []
        while True:
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 1:
                parts.append(line[:-1])
                if i >= len(natural):
                    break  # a continuation at the end of the file continues onto nothing
                line = natural[i].lstrip(_WHITESPACE)
                i += 1
            else:
                parts.append(line)
                break
        yield start + 1, "".join(parts)


def _unescape(raw: str, source: str, lineno: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(raw):
            break  # a lone trailing backslash (end of file) stands for nothing
        esc = raw[i]
        if esc == "u":
            digits = raw[i + 1 : i + 5]
            if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                bad = "\\u" + digits
                raise ConfigurationError(
                    f"{source}:{lineno}: malformed \\uXXXX escape {bad!r}: "
                    "expected four hexadecimal digits"
                )
            out.append(chr(int(digits, 16)))
            i += 5
            continue
        out.append(_ESCAPES.get(esc, esc))
        i += 1
    return "".join(out)


def _split(line: str) -> tuple[str, str]:
    """Split a logical line into raw (still escaped) key and value."""
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=:" or ch in _WHITESPACE:
            break
        i += 1
    key = line[:i]
    j = i
    while j < n and line[j] in _WHITESPACE:
        j += 1
    if j < n and line[j] in "=:":
        j += 1
        while j < n and line[j] in _WHITESPACE:
            j += 1
    return key, line[j:]


def parse_properties(text: str, source: str = "<string>") -> PropertiesFile:
    r"""Parse the text of a ``.properties`` file.

    Args:
        text: The file's content.
        source: Name used in error messages (usually the file path).

    Returns:
        The keys and values, with the line of each key.

    Raises:
        ConfigurationError: a malformed ``\\uXXXX`` escape or a key given twice; the message
            names the source and the line.
    """
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, logical in _logical_lines(text):
        raw_key, raw_value = _split(logical)
        key = _unescape(raw_key, source, lineno)
        value = _unescape(raw_value, source, lineno)
        if key in values:
            raise ConfigurationError(
                f"{source}:{lineno}: key {key!r} given twice (first at line {lines[key]})"
            )
        values[key] = value
        lines[key] = lineno
    return PropertiesFile(source, values, lines)


def load_properties_file(path: str | os.PathLike[str]) -> PropertiesFile:
    """Read and parse one ``.properties`` file (UTF-8).

    Raises:
        ConfigurationError: the file is missing, unreadable, not UTF-8 or malformed; the
            message names the file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{p}: configuration file not found") from None
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot read configuration file: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{p}: not valid UTF-8 at byte {exc.start}") from None
    return parse_properties(text, str(p))
