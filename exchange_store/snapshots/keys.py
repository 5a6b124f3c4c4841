"""The snapshot store's encryption key: generated once, kept in a file or the environment.

Snapshot state outlives a query, so unlike the exchange's per-query keys its key must be the
same for every coordinator and worker that reads or writes the store. It is 32 random bytes
(AES-256), held in a file (64 hex characters, or the 32 raw bytes) named by
``snapshot.encryption-key-file``, or in the environment variable
``EXCHANGE_STORE_SNAPSHOT_KEY`` (64 hex characters), which wins over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from exchange_store.crypto import keyfile
from exchange_store.crypto.keyfile import KEY_SIZE, generate_key_file
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

KEY_ENV_VAR = "EXCHANGE_STORE_SNAPSHOT_KEY"
KEY_FILE_KEY = "snapshot.encryption-key-file"
_WHAT = "snapshot encryption key"


def parse_key(data: bytes, source: str) -> bytes:
    """Decode a key: 64 hex characters (surrounding white space ignored) or 32 raw bytes.

    Raises:
        ConfigurationError: anything else; names ``source``.
    """
    return keyfile.parse_key(data, source, _WHAT)


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read the key held in ``path``.

    Raises:
        ConfigurationError: the file is missing, unreadable or not a key; names the file.
    """
    return keyfile.load_key_file(path, KEY_FILE_KEY, _WHAT)


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key in ``EXCHANGE_STORE_SNAPSHOT_KEY``, or None when it is unset or empty.

    Raises:
        ConfigurationError: the variable is set but is not 64 hex characters.
    """
    return keyfile.key_from_env(KEY_ENV_VAR, environ)


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
