"""Zstandard compression (the zstandard package, which releases the GIL while it works)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

import zstandard

from exchange_store.codecs.base import Codec
from exchange_store.errors import InvalidArgumentError

__all__ = ["MAX_LEVEL", "MIN_LEVEL", "ZstdCodec"]

MIN_LEVEL = -7
MAX_LEVEL = 22

# zstandard contexts are not safe to share between threads but are costly to create for
# every block, so each thread keeps its own, per level.
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


@dataclass(frozen=True, slots=True)
class ZstdCodec(Codec):
    """Zstandard frames (with the content size written in the frame header).

    Attributes:
        level: Compression level, -7 (fastest) to 22 (smallest); 0 is not allowed (zstd would
            read it as "default"). Default 3, as Trino's.
    """

    name: ClassVar[str] = "ZSTD"
    codec_id: ClassVar[int] = 2

    level: int = 3

    def __post_init__(self) -> None:
        lv = self.level
        if (
            isinstance(lv, bool)
            or not isinstance(lv, int)
            or not MIN_LEVEL <= lv <= MAX_LEVEL
            or lv == 0
        ):
            raise InvalidArgumentError(
                f"invalid ZSTD level {lv!r}: must be an integer from {MIN_LEVEL} to {MAX_LEVEL}"
                " other than 0"
            )

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Docstring inherited."""
        return _compressor(self.level).compress(data)

    def decompress(self, data: bytes | bytearray | memoryview, raw_size: int) -> bytes:
        """Docstring inherited."""
        try:
            params = zstandard.get_frame_parameters(data)
        except zstandard.ZstdError as exc:
            raise ValueError(f"ZSTD frame is malformed: {exc}") from exc
        if params.content_size != raw_size:
            raise ValueError(
                f"ZSTD frame declares {params.content_size} bytes, expected {raw_size}"
            )
        try:
            out = _decompressor().decompress(data, max_output_size=raw_size)
        except zstandard.ZstdError as exc:
            raise ValueError(f"ZSTD frame is malformed: {exc}") from exc
        if len(out) != raw_size:
            raise ValueError(f"ZSTD frame expands to {len(out)} bytes, expected {raw_size}")
        return out
