"""The identity codec: blocks are stored as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from exchange_store.codecs.base import Codec

__all__ = ["NoneCodec"]


@dataclass(frozen=True, slots=True)
class NoneCodec(Codec):
    """No compression (``exchange.compression-codec=NONE``)."""

    name: ClassVar[str] = "NONE"
    codec_id: ClassVar[int] = 0
    is_identity: ClassVar[bool] = True

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Docstring inherited."""
        return bytes(data)

    def decompress(self, data: bytes | bytearray | memoryview, raw_size: int) -> bytes:
        """Docstring inherited."""
        if len(data) != raw_size:
            raise ValueError(f"NONE block holds {len(data)} bytes, expected {raw_size}")
        return bytes(data)
