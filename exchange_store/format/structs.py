"""Byte layout of record files (version 1): constants, fixed structs and varints.

See ``docs/FORMAT.md`` for the full description. All integers are little-endian except the
AES-GCM nonce (a 96-bit big-endian block index). In short::

    file    = header(32) block* footer_body trailer(48)
    header  = magic "XSRF" | version u8 | flags u8 | reserved u16 | file_id 16B
              | reserved u32 | crc32c u32 (of the 28 bytes before it)
    block   = block_header(32) payload crc32c u32
    block_header = index u32 | partition u32 | records u32 | flags u8 | codec u8
                   | reserved u16 | raw_size u64 | payload_length u64
    trailer = body_length u64 | file_length u64 | block_count u32 | version u8 | flags u8
              | reserved u16 | crc32c u32 | tag 16B | magic "XSRE"
"""

from __future__ import annotations

import struct

import crc32c as _crc32c

from exchange_store.errors import IntegrityError

__all__ = [
    "BLOCK_COMPRESSED",
    "BLOCK_ENCRYPTED",
    "BLOCK_HEADER",
    "BLOCK_OVERHEAD",
    "CRC",
    "END_MAGIC",
    "FILE_ENCRYPTED",
    "FILE_HEADER",
    "FILE_ID_SIZE",
    "FILE_INFO",
    "FOOTER_NONCE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BLOCKS",
    "MAX_U32",
    "TRAILER",
    "TRAILER_SIZE",
    "VERSION",
    "crc",
    "decode_varint",
    "encode_varint",
    "seeded_crc",
]

MAGIC = b"XSRF"
END_MAGIC = b"XSRE"
VERSION = 1
FILE_ID_SIZE = 16

FILE_ENCRYPTED = 0x01
FILE_FLAGS_KNOWN = FILE_ENCRYPTED
BLOCK_COMPRESSED = 0x01
BLOCK_ENCRYPTED = 0x02
BLOCK_FLAGS_KNOWN = BLOCK_COMPRESSED | BLOCK_ENCRYPTED

# magic, version, flags, reserved u16, file id, reserved u32, crc32c
FILE_HEADER = struct.Struct("<4sBBH16sII")
HEADER_SIZE = FILE_HEADER.size  # 32

# index, partition, records, flags, codec id, reserved u16, raw size, payload length
BLOCK_HEADER = struct.Struct("<IIIBBHQQ")
CRC = struct.Struct("<I")
BLOCK_OVERHEAD = BLOCK_HEADER.size + CRC.size  # 36 (plus a 16-byte tag when encrypted)

# body length, file length, block count, version, flags, reserved u16, crc32c, tag, end magic
TRAILER = struct.Struct("<QQIBBHI16s4s")
TRAILER_SIZE = TRAILER.size  # 48
TRAILER_CRC_OFFSET = 24  # the fields before the crc
TRAILER_TAG_OFFSET = 28  # the fields before the tag

MAX_U32 = 0xFFFFFFFF
MAX_BLOCKS = MAX_U32  # block indexes are u32 and never reach the footer nonce

# HKDF "info" strings: one purpose, one subkey.
FILE_INFO = b"exchange-store/v1/file"
# The footer's GMAC uses the all-ones nonce, which no block index (u32) can produce.
FOOTER_NONCE = b"\xff" * 12


def crc(*parts: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli) of the concatenation of ``parts``."""
    return seeded_crc(0, *parts)


def seeded_crc(seed: int, *parts: bytes | bytearray | memoryview) -> int:
    """CRC32C of the concatenation of ``parts``, continuing from the CRC ``seed``."""
    value = seed
    for part in parts:
        value = _crc32c.crc32c(part, value)
    return value


def encode_varint(value: int, out: bytearray) -> None:
    """Append ``value`` (>= 0) as an unsigned LEB128 varint."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode_varint(data: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``; returns (value, next position).

    Raises:
        IntegrityError: the data ends inside the varint or it is longer than 10 bytes.
    """
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise IntegrityError(f"{what}: truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise IntegrityError(f"{what}: varint too long")
