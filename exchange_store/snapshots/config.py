"""The snapshot store's configuration: ``etc/snapshot-store.properties``.

Key names follow the exchange manager's (``snapshot.`` where it has ``exchange.``) and
openLooKeng's snapshot settings where those exist (``snapshot.max-concurrent``,
``snapshot.retained-count``). :meth:`SnapshotStoreConfig.from_properties` turns raw strings into
a frozen, typed value; every error is a :class:`~exchange_store.errors.ConfigurationError` that
names the file, the line, the key and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exchange_store.codecs import codec_names
from exchange_store.config import Key, Schema
from exchange_store.config.fields import Locator, base_directories, filesystem_name
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.factory import load_component_client

__all__ = [
    "BASE_DIRECTORIES",
    "CODECS",
    "FILESYSTEM_TYPE",
    "SNAPSHOT_STORE_SCHEMA",
    "SnapshotStoreConfig",
    "build_client",
]

CODECS = ("NONE", "LZ4", "ZSTD")
"""The built-in codecs; any codec registered with ``register_codec`` is accepted too."""
_MB = 1 << 20

FILESYSTEM_TYPE = "snapshot-filesystem-type"
BASE_DIRECTORIES = "snapshot.base-directories"
TIMEOUT = "snapshot.timeout"
MAX_CONCURRENT = "snapshot.max-concurrent"
RETAINED_COUNT = "snapshot.retained-count"
COMPRESSION_CODEC = "snapshot.compression-codec"
ENCRYPTION_ENABLED = "snapshot.encryption-enabled"
ENCRYPTION_KEY_FILE = "snapshot.encryption-key-file"
BLOCK_SIZE = "snapshot.block-size"
LEASE_TTL = "snapshot.lease-ttl"
WRITER_THREADS = "snapshot.writer-threads"

SNAPSHOT_STORE_SCHEMA = Schema(
    "snapshot-store.properties",
    [
        Key(
            FILESYSTEM_TYPE,
            "string",
            None,
            doc="NAME of the client file etc/filesystem/NAME.properties. Absent: a client "
            "inferred from the base directories (plain paths: the built-in local client).",
        ),
        Key(
            BASE_DIRECTORIES,
            "list",
            required=True,
            doc="Comma-separated base directories (paths or URIs); each job lives under one. "
            "Relative paths are resolved against the current directory.",
        ),
        Key(
            TIMEOUT,
            "duration",
            60.0,
            minimum=0.001,
            doc="A snapshot not completed this long after begin() expires; its partial state "
            "is deleted and late writes to it are refused.",
        ),
        Key(
            MAX_CONCURRENT,
            "int",
            1,
            minimum=1,
            doc="begin() refuses when this many unexpired pending snapshots exist for the job.",
        ),
        Key(
            RETAINED_COUNT,
            "int",
            5,
            minimum=1,
            doc="Completed checkpoints kept per job (older ones are deleted on completion); "
            "savepoints are never deleted automatically.",
        ),
        Key(
            COMPRESSION_CODEC,
            "enum",
            "LZ4",
            choices_from=codec_names,
            doc="Block compression of task state: NONE, LZ4 or ZSTD.",
        ),
        Key(
            ENCRYPTION_ENABLED,
            "bool",
            True,
            doc="Encrypt task state and metadata with AES-256-GCM under the store's key.",
        ),
        Key(
            ENCRYPTION_KEY_FILE,
            "string",
            None,
            doc="File holding the 32-byte key (64 hex characters or raw); relative paths are "
            "resolved against the current directory. The environment variable "
            "EXCHANGE_STORE_SNAPSHOT_KEY (64 hex characters) wins over it.",
        ),
        Key(
            BLOCK_SIZE,
            "size",
            _MB,
            minimum=1,
            doc="Target raw size of a block of task state (the unit of compression).",
        ),
        Key(
            LEASE_TTL,
            "duration",
            60.0,
            minimum=0.001,
            doc="A pending snapshot's coordinator refreshes its lease every ttl/3; gc treats "
            "the snapshot as abandoned once the lease is older than this.",
        ),
        Key(
            WRITER_THREADS,
            "int",
            2,
            minimum=1,
            maximum=64,
            doc="Threads encoding a task's state, and decoding it ahead on restore (with a codec).",
        ),
    ],
)


@dataclass(frozen=True, slots=True)
class SnapshotStoreConfig:
    """Typed ``snapshot-store.properties``.

    Attributes:
        base_directories: Absolute paths or URIs, in configured order.
        filesystem_name: NAME of ``etc/filesystem/NAME.properties``, or None to infer a client.
        timeout: Seconds a snapshot may stay pending.
        max_concurrent: Most unexpired pending snapshots per job.
        retained_count: Completed checkpoints kept per job.
        codec: NONE, LZ4 or ZSTD.
        encryption_enabled: Whether state and metadata are encrypted.
        encryption_key_file: Absolute path of the key file, or None.
        block_size: Target raw block size.
        lease_ttl: Lease time to live of a pending snapshot, seconds.
        writer_threads: Encoding threads per writer.
        source: Where the configuration came from.
    """

    base_directories: tuple[str, ...]
    filesystem_name: str | None = None
    timeout: float = 60.0
    max_concurrent: int = 1
    retained_count: int = 5
    codec: str = "LZ4"
    encryption_enabled: bool = True
    encryption_key_file: str | None = None
    block_size: int = _MB
    lease_ttl: float = 60.0
    writer_threads: int = 2
    source: str = "<properties>"

    @classmethod
    def from_properties(
        cls,
        values: Mapping[str, str],
        source: str = "<properties>",
        lines: Mapping[str, int] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> SnapshotStoreConfig:
        """Validate the raw keys of ``snapshot-store.properties``.

        Args:
            values: Raw key/value strings.
            source: The file, for error messages.
            lines: Key to line number, for error messages.
            origins: Key to where it was set when not in the file (environment variable).

        Raises:
            ConfigurationError: unknown key, bad value, missing or duplicate base directories;
                the message names the file, the key and what is allowed.
        """
        lines = dict(lines or {})
        origins = dict(origins or {})
        parsed: dict[str, Any] = SNAPSHOT_STORE_SCHEMA.parse(values, source, lines, origins)

        where = Locator(source, lines, origins).where
        resolved = base_directories(
            parsed[BASE_DIRECTORIES], BASE_DIRECTORIES, where(BASE_DIRECTORIES)
        )
        fs_name = parsed[FILESYSTEM_TYPE]
        if fs_name is not None:
            fs_name = filesystem_name(fs_name, FILESYSTEM_TYPE, where(FILESYSTEM_TYPE))
        key_file = parsed[ENCRYPTION_KEY_FILE]
        if key_file is not None:
            key_file = key_file.strip()
            key_file = os.path.abspath(key_file) if key_file else None
        return cls(
            base_directories=resolved,
            filesystem_name=fs_name,
            timeout=parsed[TIMEOUT],
            max_concurrent=parsed[MAX_CONCURRENT],
            retained_count=parsed[RETAINED_COUNT],
            codec=parsed[COMPRESSION_CODEC],
            encryption_enabled=parsed[ENCRYPTION_ENABLED],
            encryption_key_file=key_file,
            block_size=parsed[BLOCK_SIZE],
            lease_ttl=parsed[LEASE_TTL],
            writer_threads=parsed[WRITER_THREADS],
            source=source,
        )


def build_client(
    config: SnapshotStoreConfig,
    filesystems: Mapping[str, Mapping[str, str]],
    sources: Mapping[str, str] | None = None,
) -> FileSystemClient:
    """The client ``snapshot-filesystem-type`` names, or one inferred from the base directories.

    Args:
        config: The store's configuration.
        filesystems: Client files by NAME.
        sources: Where each client file came from, for messages.

    Raises:
        ConfigurationError: the named client is not given, or its file is wrong.
    """
    return load_component_client(
        config.base_directories,
        config.filesystem_name,
        filesystems,
        explicit=config.filesystem_name is not None,
        key="snapshot-filesystem-type",
        source=config.source,
        sources=sources,
    )
