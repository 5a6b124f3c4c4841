"""Data sizes and durations written the way Trino (airlift) writes them."""

from __future__ import annotations

import re

from exchange_store.errors import ConfigurationError

__all__ = [
    "DATA_SIZE_UNITS",
    "DURATION_UNITS",
    "format_data_size",
    "parse_data_size",
    "parse_duration",
]

# Binary units, case-sensitive as in airlift's DataSize: 1kB = 1024 B.
DATA_SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 1 << 10,
    "MB": 1 << 20,
    "GB": 1 << 30,
    "TB": 1 << 40,
    "PB": 1 << 50,
}
DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def _split(text: str, units: dict[str, float] | dict[str, int], what: str) -> tuple[float, str]:
    match = _PATTERN.match(text) if isinstance(text, str) else None
    allowed = ", ".join(units)
    if match is None:
        raise ConfigurationError(
            f"invalid {what} {text!r}: expected a number and a unit ({allowed}), e.g. "
            + ("'16MB'" if what == "data size" else "'10s'")
        )
    number, unit = match.groups()
    if unit not in units:
        hint = next((u for u in units if u.lower() == unit.lower()), None)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigurationError(
            f"invalid {what} {text!r}: unknown unit {unit!r}{extra}; allowed: {allowed}"
        )
    return float(number), unit


def parse_data_size(text: str) -> int:
    """Parse ``16MB``, ``1.5GB``, ``512kB`` or ``10B`` into bytes.

    Raises:
        ConfigurationError: not a number followed by one of B, kB, MB, GB, TB, PB.
    """
    number, unit = _split(text, DATA_SIZE_UNITS, "data size")
    return round(number * DATA_SIZE_UNITS[unit])


def parse_duration(text: str) -> float:
    """Parse ``250ms``, ``10s``, ``1m``, ``2h`` or ``1d`` into seconds.

    Raises:
        ConfigurationError: not a number followed by one of ns, us, ms, s, m, h, d.
    """
    number, unit = _split(text, DURATION_UNITS, "duration")
    return number * DURATION_UNITS[unit]


def format_data_size(n: int | float) -> str:
    """Render bytes with the largest binary unit that keeps the number >= 1 (``1.5GB``)."""
    for unit in ("PB", "TB", "GB", "MB", "kB"):
        scale = DATA_SIZE_UNITS[unit]
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{int(n)}B"
