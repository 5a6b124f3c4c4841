"""Block codecs (compression) and the registry that names them.

>>> from exchange_store.codecs import get_codec
>>> get_codec("zstd", level=5)
ZstdCodec(level=5)
"""

from __future__ import annotations

from exchange_store.codecs.base import Codec
from exchange_store.codecs.lz4 import Lz4Codec
from exchange_store.codecs.none import NoneCodec
from exchange_store.codecs.registry import (
    codec_for_id,
    codec_names,
    get_codec,
    get_codec_class,
    known_codecs,
    register_codec,
)
from exchange_store.codecs.zstd import ZstdCodec

__all__ = [
    "Codec",
    "Lz4Codec",
    "NoneCodec",
    "ZstdCodec",
    "codec_for_id",
    "codec_names",
    "get_codec",
    "get_codec_class",
    "known_codecs",
    "register_codec",
]
