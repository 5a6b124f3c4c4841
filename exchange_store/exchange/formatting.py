"""Building the format layer's options from exchange settings."""

from __future__ import annotations

from exchange_store.codecs import Codec, get_codec
from exchange_store.format import FormatOptions

__all__ = ["codec_for", "format_options"]


def codec_for(name: str, level: int | None) -> Codec:
    """The codec named ``name`` (NONE, LZ4, ZSTD) with an optional ZSTD level."""
    if name == "ZSTD" and level is not None:
        return get_codec(name, level=level)
    return get_codec(name)


def format_options(
    codec: str,
    level: int | None,
    key: bytes | None,
    *,
    block_size: int = 1 << 20,
    workers: int = 2,
    max_pending_blocks: int = 8,
    min_saving: float = 0.0,
) -> FormatOptions:
    """FormatOptions for one sink or source."""
    return FormatOptions(
        codec=codec_for(codec, level),
        block_size=block_size,
        key=key,
        workers=workers,
        max_pending_blocks=max_pending_blocks,
        min_saving=min_saving,
    )
