"""Long-lived AES-256 keys kept in a file or the environment, and keys derived from them.

A key is 32 random bytes, held in a file (64 hex characters, or the 32 raw bytes) or in an
environment variable (64 hex characters) that wins over the file. The snapshot store keeps its
state under such a key; the exchange manager derives each query's key from one
(:func:`derive_query_key`), so a restarted coordinator reads what the dead one committed while
no query key is ever written anywhere.
"""

from __future__ import annotations

import binascii
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange_store.errors import ConfigurationError

__all__ = [
    "KEY_SIZE",
    "derive_query_key",
    "ensure_key_file",
    "generate_key_file",
    "key_from_env",
    "load_key_file",
    "parse_key",
]

KEY_SIZE = 32
_QUERY_KEY_INFO = b"exchange-store/v1/query-key/"


def parse_key(data: bytes, source: str, what: str = "encryption key") -> bytes:
    """Decode a key: 64 hex characters (surrounding white space ignored) or 32 raw bytes.

    Raises:
        ConfigurationError: anything else; names ``source``.
    """
    text = data.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            pass
    if len(data) == KEY_SIZE:
        return bytes(data)
    raise ConfigurationError(
        f"{source}: not a {what}: expected {2 * KEY_SIZE} hex characters or "
        f"{KEY_SIZE} raw bytes, found {len(data)} bytes "
        "(create one with: exchange-store keygen PATH)"
    )


def load_key_file(
    path: str | os.PathLike[str], config_key: str, what: str = "encryption key"
) -> bytes:
    """Read the key held in ``path`` (named by the property ``config_key``).

    Raises:
        ConfigurationError: the file is missing, unreadable or not a key; names the file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{p}: {what} file not found ({config_key}); create it with: exchange-store keygen {p}"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"{p}: cannot read the {what} file ({config_key}): {exc}"
        ) from None
    return parse_key(data, f"{p} ({config_key})", what)


def key_from_env(variable: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key in the environment variable ``variable``, or None when it is unset or empty.

    Raises:
        ConfigurationError: the variable is set but is not 64 hex characters.
    """
    env = os.environ if environ is None else environ
    value = env.get(variable, "").strip()
    if not value:
        return None
    try:
        key = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ConfigurationError(
            f"environment variable {variable}: expected {2 * KEY_SIZE} hex characters "
            f"(a {KEY_SIZE}-byte key), found {len(value)} characters"
        )
    return key


def generate_key_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` holding a new random key as 64 hex characters, mode 0600.

    Parent directories are created. An existing file is never overwritten: losing the key
    makes everything written with it unreadable.

    Returns:
        The path written.

    Raises:
        ConfigurationError: ``path`` already exists, or cannot be created; names it.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{p}: refusing to overwrite an existing key file (data written with it "
            "would become unreadable); remove it first if you really mean to"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot create the key file: {exc}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed it; make it exactly 0600
        os.write(fd, secrets.token_hex(KEY_SIZE).encode() + b"\n")
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        p.unlink(missing_ok=True)
        raise ConfigurationError(f"{p}: cannot write the key file: {exc}") from None
    os.close(fd)
    return p


def ensure_key_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` with a new key unless it exists; atomic against concurrent creators.

    The key is written to a temporary file beside it and linked into place, so a reader never
    sees a half-written key and two creators agree on one.

    Raises:
        ConfigurationError: the file cannot be created; names it.
    """
    p = Path(path)
    if p.exists():
        return p
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(8)}.tmp")
    generate_key_file(tmp)
    try:
        os.link(tmp, p)
    except FileExistsError:
        pass  # another process created it first: its key stands
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot create the key file: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return p


def derive_query_key(master: bytes, query_id: str) -> bytes:
    """The AES-256 key of one query: HKDF-SHA256 of the master key, bound to the query id.

    Every coordinator holding ``master`` derives the same key for the same query; the keys of
    two queries are unrelated, and none of them is ever stored.
    """
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=None,
        info=_QUERY_KEY_INFO + query_id.encode(),
    ).derive(master)
