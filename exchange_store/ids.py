"""Validation of the ids that become parts of storage paths."""

from __future__ import annotations

import re

from exchange_store.errors import InvalidArgumentError

__all__ = ["ID_PATTERN", "INT_ID_LIMIT", "check_id", "check_int_id", "check_non_negative_int"]

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

INT_ID_LIMIT = 1 << 31
"""Task partition and attempt ids are below this (a Java ``int``, as the engines' ids)."""


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidArgumentError`.

    Args:
        value: The candidate id.
        what: The name of the field, used in the error message (``"query_id"``).

    Raises:
        InvalidArgumentError: ``value`` is not a ``str`` matching ``[A-Za-z0-9_-]{1,128}``.
    """
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise InvalidArgumentError(
            f"invalid {what} {value!r}: ids are 1 to 128 characters of [A-Za-z0-9_-]"
        )
    return value


def check_non_negative_int(value: object, what: str, upper: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` in ``[0, upper)``, else raise.

    Raises:
        InvalidArgumentError: not an int (bools are refused), negative, or not below ``upper``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"invalid {what} {value!r}: must be a non-negative integer")
    if upper is not None and value >= upper:
        raise InvalidArgumentError(f"invalid {what} {value!r}: must be below {upper}")
    return value


def check_int_id(value: object, what: str) -> int:
    """A task partition or attempt id: an ``int`` in ``[0, 2**31)``.

    Raises:
        InvalidArgumentError: not an int, negative, or 2**31 and above (names ``what``).
    """
    return check_non_negative_int(value, what, INT_ID_LIMIT)
