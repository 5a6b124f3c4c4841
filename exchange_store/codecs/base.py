"""The codec interface: one small ABC that turns a block's bytes into fewer bytes and back.

A codec is a frozen, slotted dataclass whose fields are its parameters (``ZstdCodec(level=3)``),
so two codecs with the same settings compare equal and can be pickled into task handles.
Codecs are stateless and thread-safe: the record-file writer calls :meth:`Codec.compress` from
several threads at once. Implementations should release the GIL while they work (lz4 and
zstandard do), so encoding on a small thread pool uses more than one core.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["Codec"]


class Codec(ABC):
    """Compression of one block of bytes.

    Class attributes:
        name: The registry name (``"NONE"``, ``"LZ4"``, ``"ZSTD"``), upper case.
        codec_id: The byte stored in every block header so a reader can decode a block
            whatever codec its own options name. 0-127 are reserved for built-in codecs;
            third-party codecs pick an id in 128-255.
        is_identity: The codec does not transform data; the writer then skips it entirely.
    """

    __slots__ = ()

    name: ClassVar[str] = ""
    codec_id: ClassVar[int] = -1
    is_identity: ClassVar[bool] = False

    @abstractmethod
    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress ``data``.

        The result may be larger than ``data``; the writer then stores the block raw.
        """

    @abstractmethod
    def decompress(self, data: bytes | bytearray | memoryview, raw_size: int) -> bytes:
        """Decompress ``data``, which must expand to exactly ``raw_size`` bytes.

        Raises:
            ValueError: ``data`` is not valid output of :meth:`compress` or does not expand to
                ``raw_size`` bytes. (The format layer turns any failure into IntegrityError.)
        """

    def to_dict(self) -> dict[str, Any]:
        """The codec's name and parameters, e.g. ``{"name": "ZSTD", "level": 3}``."""
        out: dict[str, Any] = {"name": self.name}
        if dataclasses.is_dataclass(self):
            for f in dataclasses.fields(self):
                out[f.name] = getattr(self, f.name)
        return out
