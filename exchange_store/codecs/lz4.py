"""LZ4 block compression (python-lz4, which releases the GIL while it works)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import lz4.block

from exchange_store.codecs.base import Codec
from exchange_store.errors import InvalidArgumentError

__all__ = ["Lz4Codec"]


@dataclass(frozen=True, slots=True)
class Lz4Codec(Codec):
    """LZ4 raw block format; the size of the block is kept in the record-file block header.

    Attributes:
        acceleration: LZ4's speed/ratio knob, 1 (default, best ratio) to 65537 (fastest).
    """

    name: ClassVar[str] = "LZ4"
    codec_id: ClassVar[int] = 1

    acceleration: int = 1

    def __post_init__(self) -> None:
        a = self.acceleration
        if isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= 65537:
            raise InvalidArgumentError(
                f"invalid LZ4 acceleration {a!r}: must be an integer from 1 to 65537"
            )

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Docstring inherited."""
        if self.acceleration == 1:
            return lz4.block.compress(data, store_size=False)
        return lz4.block.compress(
            data, mode="fast", acceleration=self.acceleration, store_size=False
        )

    def decompress(self, data: bytes | bytearray | memoryview, raw_size: int) -> bytes:
        """Docstring inherited."""
        if raw_size == 0:
            if len(data) not in (0, 1) or (len(data) == 1 and bytes(data) != b"\x00"):
                raise ValueError("LZ4 block of an empty input is malformed")
            return b""
        try:
            out = lz4.block.decompress(data, uncompressed_size=raw_size)
        except lz4.block.LZ4BlockError as exc:
            raise ValueError(f"LZ4 block is malformed: {exc}") from exc
        if len(out) != raw_size:
            raise ValueError(f"LZ4 block expands to {len(out)} bytes, expected {raw_size}")
        return out
