"""Typed, validated keys: what each component accepts in its properties file.

Properties stay ``dict[str, str]`` until a component's ``from_properties``; there a
:class:`Schema` turns them into typed values with defaults filled in, and every error names the
file, the line, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from exchange_store.config.units import format_data_size, parse_data_size, parse_duration
from exchange_store.errors import ConfigurationError

__all__ = ["Key", "KeyKind", "Schema"]

KeyKind = Literal["string", "int", "float", "bool", "size", "duration", "enum", "list"]
_KINDS = frozenset({"string", "int", "float", "bool", "size", "duration", "enum", "list"})


@dataclass(frozen=True, slots=True)
class Key:
    """One accepted key.

    Attributes:
        name: The key as written in the file (``exchange.base-directories``).
        kind: How the value is parsed.
        default: The typed value when the key is absent (None: no value).
        choices: Allowed values for ``enum`` (matched case-insensitively, returned as listed).
        choices_from: Or a function giving them when a value is parsed (a plugin registry's
            names, so that a codec registered by another package is accepted).
        minimum: Smallest allowed number (for int, float, size, duration).
        maximum: Largest allowed number.
        doc: One line for the README's configuration reference.
        aliases: Other names accepted for the same key (legacy or openLooKeng names).
        secret: Never shown in error messages or logs.
        required: The key must be present.
    """

    name: str
    kind: KeyKind
    default: Any = None
    choices: tuple[str, ...] = ()
    choices_from: Callable[[], Sequence[str]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""
    aliases: tuple[str, ...] = ()
    secret: bool = False
    required: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown key kind {self.kind!r} for {self.name}")
        if self.kind == "enum" and not self.choices and self.choices_from is None:
            raise ValueError(f"enum key {self.name} needs choices")

    def allowed(self) -> str:
        """Describe the allowed values for an error message."""
        if self.kind == "enum":
            return " | ".join(self.options())
        described = {
            "string": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "true | false",
            "size": "a data size such as 512kB, 16MB, 1GB",
            "duration": "a duration such as 250ms, 10s, 1m",
            "list": "a comma-separated list",
        }[self.kind]
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self.show(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"<= {self.show(self.maximum)}")
        return described + (f" ({', '.join(bounds)})" if bounds else "")

    def options(self) -> tuple[str, ...]:
        """The allowed values of an ``enum`` key."""
        return tuple(self.choices_from()) if self.choices_from is not None else self.choices

    def show(self, number: float) -> str:
        """Render a bound in this key's units (``16MB``, ``250ms``, ``4``)."""
        if self.kind == "size":
            return format_data_size(number)
        if self.kind == "duration":
            return f"{number * 1000:g}ms" if number < 1 else f"{number:g}s"
        return f"{number:g}"

    def convert(self, raw: str) -> Any:
        """Parse ``raw`` into this key's type; raises ConfigurationError without location."""
        text = raw.strip()
        value: Any
        if self.kind == "string":
            value = text
        elif self.kind == "list":
            value = tuple(item.strip() for item in text.split(",") if item.strip())
        elif self.kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ConfigurationError("expected true or false")
            value = text.lower() == "true"
        elif self.kind == "enum":
            options = self.options()
            match = next((c for c in options if c.lower() == text.lower()), None)
            if match is None:
                raise ConfigurationError(f"expected one of {' | '.join(options)}")
            value = match
        elif self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise ConfigurationError("expected an integer") from None
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ConfigurationError("expected a number") from None
        elif self.kind == "size":
            value = parse_data_size(text)
        else:
            value = parse_duration(text)
        if self.kind in ("int", "float", "size", "duration"):
            if self.minimum is not None and value < self.minimum:
                raise ConfigurationError(f"must be >= {self.show(self.minimum)}")
            if self.maximum is not None and value > self.maximum:
                raise ConfigurationError(f"must be <= {self.show(self.maximum)}")
        return value


@dataclass(frozen=True, slots=True)
class Schema:
    """The keys one properties file accepts.

    Attributes:
        source_name: What the file is, for messages (``exchange-manager.properties``).
        keys: The accepted keys.
        prefixes: Key prefixes passed through unparsed (``fsspec.option.``).
    """

    source_name: str
    keys: Sequence[Key]
    prefixes: Sequence[str] = ()
    _by_name: dict[str, Key] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Key] = {}
        for key in self.keys:
            for name in (key.name, *key.aliases):
                if name in by_name:
                    raise ValueError(f"key {name} declared twice in {self.source_name}")
                by_name[name] = key
        object.__setattr__(self, "_by_name", by_name)

    def key(self, name: str) -> Key:
        """The key declared as ``name`` (or one of its aliases)."""
        return self._by_name[name]

    def names(self) -> list[str]:
        """Every accepted name, aliases included."""
        return list(self._by_name)

    def parse(
        self,
        values: Mapping[str, str],
        source: str = "<properties>",
        lines: Mapping[str, int] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Validate ``values`` and return every key's typed value (defaults filled in).

        Aliases are resolved to the main key name; keys under :attr:`prefixes` are returned
        as given.

        Args:
            values: Raw key/value strings.
            source: The file, for messages.
            lines: Key to line number, for messages.
            origins: Key to a description of where it came from (overrides ``lines``).

        Raises:
            ConfigurationError: an unknown key (with a did-you-mean where one is close), a value
                that does not parse or is out of range, a missing required key, or a key given
                both under its name and an alias.
        """
        lines = lines or {}
        origins = origins or {}

        def where(name: str) -> str:
            if name in origins:
                return origins[name]
            return f"{source}:{lines[name]}" if name in lines else source

        out: dict[str, Any] = {}
        seen_from: dict[str, str] = {}
        for name, raw in values.items():
            key = self._by_name.get(name)
            if key is None:
                if any(name.startswith(p) for p in self.prefixes):
                    out[name] = raw
                    continue
                close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigurationError(
                    f"{where(name)}: unknown key {name!r} in {self.source_name}{hint}"
                )
            if key.name in seen_from:
                raise ConfigurationError(
                    f"{where(name)}: {name!r} and {seen_from[key.name]!r} set the same key"
                )
            seen_from[key.name] = name
            try:
                out[key.name] = key.convert(raw)
            except ConfigurationError as exc:
                shown = "<secret>" if key.secret else repr(raw)
                detail = str(exc)
                if ": " in detail and detail.startswith("invalid"):
                    detail = detail.split(": ", 1)[1]
                if "allowed:" not in detail:
                    detail += f"; allowed: {key.allowed()}"
                raise ConfigurationError(f"{where(name)}: {name}={shown}: {detail}") from None
        for key in self.keys:
            if key.name not in out:
                if key.required:
                    raise ConfigurationError(
                        f"{source}: missing required key {key.name!r} ({key.allowed()})"
                    )
                out[key.name] = key.default
        return out
