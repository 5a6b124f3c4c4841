"""Data sizes and durations, with Trino's units."""

from __future__ import annotations

import pytest

from exchange_store.config import format_data_size, parse_data_size, parse_duration
from exchange_store.errors import ConfigurationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10B", 10),
        ("512kB", 512 * 1024),
        ("16MB", 16 << 20),
        ("1GB", 1 << 30),
        ("1.5GB", 3 << 29),
        ("2TB", 2 << 40),
        ("1PB", 1 << 50),
        (" 16 MB ", 16 << 20),
        ("0B", 0),
    ],
)
def test_data_sizes(text: str, expected: int) -> None:
    assert parse_data_size(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("16", "expected a number and a unit"),
        ("MB", "expected a number and a unit"),
        ("-1MB", "expected a number and a unit"),
        ("16mb", "did you mean 'MB'"),
        ("16KB", "did you mean 'kB'"),
        ("16XB", "unknown unit 'XB'"),
        ("", "expected a number and a unit"),
    ],
)
def test_bad_data_sizes(text: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=hint) as info:
        parse_data_size(text)
    assert "B, kB, MB, GB, TB, PB" in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        ("100ns", 1e-7),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "10 sec", "1M", "s", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"ns, us, ms, s, m, h, d"):
        parse_duration(text)


def test_format_data_size() -> None:
    assert format_data_size(16 << 20) == "16MB"
    assert format_data_size(1536) == "1.5kB"
    assert format_data_size(12) == "12B"
