"""AES-256-GCM helpers: key checks and the per-file subkey derivation.

The caller's 32-byte key is never used directly: each file (and each sealed blob) draws a
random 16-byte id and derives its own subkey with HKDF-SHA256(key, salt=id, info=purpose).
Nonces then only have to be unique within one file, so the block index serves as the nonce,
and many writers in many processes can share one key without ever repeating a (key, nonce)
pair (a collision would need two files drawing the same random 128-bit id).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange_store.errors import InvalidArgumentError

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "check_key",
    "derive_cipher",
    "derive_key",
    "nonce_for",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def check_key(key: object, what: str = "key") -> bytes | None:
    """Return ``key`` as bytes if it is None or 32 bytes, else raise.

    Raises:
        InvalidArgumentError: not bytes-like or not 32 bytes long. The key is not shown.
    """
    if key is None:
        return None
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidArgumentError(f"{what} must be {KEY_SIZE} bytes, got {type(key).__name__}")
    raw = bytes(key)
    if len(raw) != KEY_SIZE:
        raise InvalidArgumentError(
            f"{what} must be {KEY_SIZE} bytes (AES-256), got {len(raw)} bytes"
        )
    return raw


def derive_key(key: bytes, salt: bytes, info: bytes) -> bytes:
    """The 32-byte subkey HKDF-SHA256(key, salt, info)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(key)


def derive_cipher(key: bytes, salt: bytes, info: bytes) -> AESGCM:
    """The AES-256-GCM cipher under HKDF-SHA256(key, salt, info)."""
    return AESGCM(derive_key(key, salt, info))


def nonce_for(counter: int) -> bytes:
    """The 96-bit nonce for ``counter`` (big-endian)."""
    return counter.to_bytes(NONCE_SIZE, "big")
