"""The snapshot store's encryption key: generated once, kept in a file or the environment.

Snapshot state outlives a query, so unlike the exchange's per-query keys its key must be the
same for every coordinator and worker that reads or writes the store. It is 32 random bytes
(AES-256), held in a file (64 hex characters, or the 32 raw bytes) named by
``snapshot.encryption-key-file``, or in the environment variable
``EXCHANGE_STORE_SNAPSHOT_KEY`` (64 hex characters), which wins over the file.
"""

from __future__ import annotations

import binascii
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from exchange_store.errors import ConfigurationError, InvalidArgumentError

if TYPE_CHECKING:
    from exchange_store.snapshots.config import SnapshotStoreConfig

__all__ = [
    "KEY_ENV_VAR",
    "KEY_FILE_KEY",
    "KEY_SIZE",
    "generate_key_file",
    "key_from_env",
    "load_key_file",
    "no_key_message",
    "parse_key",
    "resolve_key",
]

KEY_SIZE = 32
KEY_ENV_VAR = "EXCHANGE_STORE_SNAPSHOT_KEY"
KEY_FILE_KEY = "snapshot.encryption-key-file"


def parse_key(data: bytes, source: str) -> bytes:
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
        f"{source}: not a snapshot encryption key: expected {2 * KEY_SIZE} hex characters or "
        f"{KEY_SIZE} raw bytes, found {len(data)} bytes "
        "(create one with: exchange-store keygen PATH)"
    )


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read the key held in ``path``.

    Raises:
        ConfigurationError: the file is missing, unreadable or not a key; names the file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{p}: snapshot encryption key file not found ({KEY_FILE_KEY}); "
            f"create it with: exchange-store keygen {p}"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"{p}: cannot read the snapshot encryption key file ({KEY_FILE_KEY}): {exc}"
        ) from None
    return parse_key(data, f"{p} ({KEY_FILE_KEY})")


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key in ``EXCHANGE_STORE_SNAPSHOT_KEY``, or None when it is unset or empty.

    Raises:
        ConfigurationError: the variable is set but is not 64 hex characters.
    """
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV_VAR, "").strip()
    if not value:
        return None
    try:
        key = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ConfigurationError(
            f"environment variable {KEY_ENV_VAR}: expected {2 * KEY_SIZE} hex characters "
            f"(a {KEY_SIZE}-byte key), found {len(value)} characters"
        )
    return key


def generate_key_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` holding a new random key as 64 hex characters, mode 0600.

    Parent directories are created. An existing file is never overwritten: losing the key
    makes every snapshot written with it unreadable.

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
            f"{p}: refusing to overwrite an existing key file (snapshots written with it "
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


def no_key_message(config: SnapshotStoreConfig) -> str:
    """The error text for encryption enabled without any key."""
    return (
        f"{config.source}: snapshot.encryption-enabled=true but no encryption key is "
        f"configured: set {KEY_FILE_KEY} (a file holding 32 random bytes; create one with "
        f"`exchange-store keygen PATH`) or the environment variable {KEY_ENV_VAR} "
        "(64 hex characters), or set snapshot.encryption-enabled=false"
    )


def resolve_key(
    config: SnapshotStoreConfig, key: bytes | None, environ: Mapping[str, str] | None = None
) -> bytes | None:
    """The store's key: explicit, then the environment, then the key file.

    Returns:
        None when encryption is disabled (any key is then ignored).

    Raises:
        ConfigurationError: encryption is enabled and no key is found (names the keys), or
            the key file or variable is wrong (names it).
        InvalidArgumentError: an explicit key that is not 32 bytes.
    """
    if not config.encryption_enabled:
        return None
    if key is not None:
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise InvalidArgumentError(f"the snapshot key must be {KEY_SIZE} bytes")
        return key
    from_env = key_from_env(environ)
    if from_env is not None:
        return from_env
    if config.encryption_key_file is not None:
        return load_key_file(config.encryption_key_file)
    raise ConfigurationError(no_key_message(config))
