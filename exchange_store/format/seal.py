"""Sealing of small metadata files (manifests, snapshot metadata).

Layout (little-endian)::

    magic "XSSL" | version u8 | flags u8 | reserved u16
    [salt 16B]                      -- only when encrypted (flags bit 0)
    body                            -- payload, or AES-256-GCM ciphertext || 16-byte tag
    crc32c u32                      -- of u32 len(context) || context || everything above

Encrypted: the subkey is HKDF-SHA256(key, salt, info=b"exchange-store/v1/seal") with a fresh
random salt per seal, so the fixed all-zero nonce is used once per subkey; the AAD is the 8-byte
head, the salt and the context. Unencrypted, the CRC (seeded with the context) detects any
change, truncation or a blob of another context.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag

from exchange_store.crypto.aes import TAG_SIZE, check_key, derive_cipher
from exchange_store.errors import IntegrityError
from exchange_store.format.block import Buffer, check_context
from exchange_store.format.reader import UnknownFormatVersionError
from exchange_store.format.structs import CRC, crc

__all__ = ["SEAL_MAGIC", "seal", "unseal"]

SEAL_MAGIC = b"XSSL"
SEAL_VERSION = 1
SEAL_INFO = b"exchange-store/v1/seal"
_ENCRYPTED = 0x01
_HEAD = struct.Struct("<4sBBH")
_SALT = 16
_NONCE = bytes(12)


def _context_prefix(context: bytes) -> bytes:
    return struct.pack("<I", len(context)) + context


def seal(payload: Buffer, key: bytes | None, context: bytes) -> bytes:
    """Wrap ``payload`` so any change is detected; encrypt and authenticate it when keyed.

    Args:
        payload: The bytes to protect.
        key: 32-byte AES-256 key, or None for a checksum only.
        context: Bytes naming what this is (e.g. ``b"q1/stage-1/tp3/a0/manifest"``); unseal
            needs the same bytes.

    Raises:
        InvalidArgumentError: a key of the wrong size, or a context that is not bytes.
    """
    raw_key = check_key(key, "seal key")
    ctx = check_context(context)
    data = bytes(payload)
    if raw_key is None:
        out = _HEAD.pack(SEAL_MAGIC, SEAL_VERSION, 0, 0) + data
    else:
        head = _HEAD.pack(SEAL_MAGIC, SEAL_VERSION, _ENCRYPTED, 0)
        salt = os.urandom(_SALT)
        cipher = derive_cipher(raw_key, salt, SEAL_INFO)
        out = head + salt + cipher.encrypt(_NONCE, data, head + salt + ctx)
    return out + CRC.pack(crc(_context_prefix(ctx), out))


def unseal(data: Buffer, key: bytes | None, context: bytes) -> bytes:
    """Check and open what :func:`seal` produced.

    Raises:
        IntegrityError: any changed, missing or added byte; wrong key or context; a sealed blob
            that is encrypted when no key is given, or plain when one is.
        UnknownFormatVersionError: an unknown seal version.
    """
    raw_key = check_key(key, "seal key")
    ctx = check_context(context)
    blob = bytes(data)
    if len(blob) < _HEAD.size + CRC.size:
        raise IntegrityError(f"sealed data of {len(blob)} bytes is too short (truncated?)")
    magic, version, flags, reserved = _HEAD.unpack_from(blob)
    if magic != SEAL_MAGIC:
        raise IntegrityError(f"not sealed data (magic {magic!r})")
    (stored,) = CRC.unpack_from(blob, len(blob) - CRC.size)
    body = blob[: len(blob) - CRC.size]
    if crc(_context_prefix(ctx), body) != stored:
        raise IntegrityError("sealed data checksum mismatch (changed, truncated or wrong context)")
    if version != SEAL_VERSION:
        raise UnknownFormatVersionError(
            f"sealed data version {version}; this reader knows {SEAL_VERSION}"
        )
    if flags & ~_ENCRYPTED or reserved:
        raise IntegrityError(f"sealed data has unknown flags {flags:#x}/{reserved:#x}")
    if not flags & _ENCRYPTED:
        if raw_key is not None:
            raise IntegrityError("sealed data is not encrypted but a key was given")
        return body[_HEAD.size :]
    if raw_key is None:
        raise IntegrityError("sealed data is encrypted but no key was given")
    if len(body) < _HEAD.size + _SALT + TAG_SIZE:
        raise IntegrityError("encrypted sealed data is too short")
    salt = body[_HEAD.size : _HEAD.size + _SALT]
    cipher = derive_cipher(raw_key, salt, SEAL_INFO)
    try:
        return cipher.decrypt(_NONCE, body[_HEAD.size + _SALT :], body[: _HEAD.size] + salt + ctx)
    except InvalidTag:
        raise IntegrityError(
            "sealed data authentication failed (wrong key or context, or data changed)"
        ) from None
