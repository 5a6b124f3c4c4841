"""The exchange manager's configuration: ``etc/exchange-manager.properties``.

Key names follow Trino's filesystem exchange (and openLooKeng's where Trino has none). One
:meth:`ExchangeManagerConfig.from_properties` turns the raw strings into a frozen, typed value;
every error is a :class:`~exchange_store.errors.ConfigurationError` naming the file, the line,
the key and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange_store.codecs import codec_names, get_codec
from exchange_store.config import Key, Schema
from exchange_store.config.fields import Locator, base_directories, filesystem_name
from exchange_store.errors import ConfigurationError
from exchange_store.filesystems.engine_keys import ENGINE_STORAGE_PREFIXES, log_compatibility_keys

__all__ = [
    "CODECS",
    "DEFAULT_FILESYSTEM_NAME",
    "EXCHANGE_MANAGER_SCHEMA",
    "ExchangeManagerConfig",
    "is_local_path",
]

CODECS = ("NONE", "LZ4", "ZSTD")
"""The built-in codecs; any codec registered with ``register_codec`` is accepted too."""
DEFAULT_FILESYSTEM_NAME = "exchange"
_MB = 1 << 20

MANAGER_NAME = "exchange-manager.name"
FILESYSTEM_TYPE = "exchange-filesystem-type"
BASE_DIRECTORIES = "exchange.base-directories"
COMPRESSION_CODEC = "exchange.compression-codec"
COMPRESSION_ENABLED = "exchange.compression-enabled"
COMPRESSION_LEVEL = "exchange.compression-level"
ENCRYPTION_KEY_FILE = "exchange.encryption-key-file"
KEY_ENV_VAR = "EXCHANGE_STORE_EXCHANGE_KEY"

_S3_STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
)
# Trino's storage keys (ExchangeS3Config, ExchangeGcsConfig, ExchangeAzureConfig, the HDFS
# exchange plugin): with no etc/filesystem client file they build the client (see
# exchange_store.filesystems.engine_keys).
_ENGINE_STORAGE_KEYS = (
    Key("exchange.s3.region", "string", doc="S3: AWS region."),
    Key("exchange.s3.endpoint", "string", doc="S3: endpoint URL (MinIO, ...)."),
    Key("exchange.s3.aws-access-key", "string", doc="S3: access key id.", secret=True),
    Key("exchange.s3.aws-secret-key", "string", doc="S3: secret key.", secret=True),
    Key("exchange.s3.iam-role", "string", doc="S3: accepted; use the default chain's role."),
    Key("exchange.s3.external-id", "string", doc="S3: accepted with iam-role."),
    Key("exchange.s3.path-style-access", "bool", None, doc="S3: path-style addressing."),
    Key("exchange.s3.max-error-retries", "int", None, minimum=0, doc="S3: retries."),
    Key(
        "exchange.s3.upload.part-size",
        "size",
        None,
        minimum=5 * _MB,
        maximum=256 * _MB,
        doc="S3: multipart part size.",
    ),
    Key("exchange.s3.storage-class", "enum", None, choices=_S3_STORAGE_CLASSES, doc="S3 class."),
    Key("exchange.s3.retry-mode", "enum", None, choices=("LEGACY", "STANDARD", "ADAPTIVE")),
    Key("exchange.s3.sse.type", "enum", None, choices=("NONE", "S3", "KMS"), doc="S3 SSE."),
    Key("exchange.s3.sse.kms-key-id", "string", doc="S3: KMS key of SSE-KMS."),
    Key("exchange.s3.sse.enabled", "bool", None, doc="Older Trino; see sse.type."),
    Key("exchange.s3.async-client-concurrency", "int", None, minimum=1, doc="S3 connections."),
    Key("exchange.s3.async-client-max-pending-connection-acquires", "int", None, minimum=1),
    Key("exchange.s3.async-client-connection-acquisition-timeout", "duration", None),
    Key("exchange.gcs.json-key-file-path", "string", doc="GCS: service account key file."),
    Key("exchange.gcs.json-key", "string", doc="GCS: service account key JSON.", secret=True),
    Key("exchange.azure.connection-string", "string", doc="Azure connection.", secret=True),
    Key("exchange.azure.endpoint", "string", doc="Azure: blob endpoint host."),
    Key(
        "exchange.azure.block-size",
        "size",
        None,
        minimum=4 * _MB,
        maximum=256 * _MB,
        doc="Azure: block size of uploads.",
    ),
    Key("exchange.azure.max-error-retries", "int", None, minimum=0, doc="Azure: retries."),
    Key("hdfs.config.resources", "list", None, doc="HDFS: core-site.xml, hdfs-site.xml."),
    Key("exchange.hdfs.block-size", "size", None, minimum=1, doc="HDFS: block size of files."),
    Key("exchange.hdfs.skip-directory-scheme-validation", "bool", None),
    Key("exchange.source-max-files-per-reader", "int", None, minimum=1),
    Key("exchange.prefix-groups", "int", None, minimum=1),
)

EXCHANGE_MANAGER_SCHEMA = Schema(
    "exchange-manager.properties",
    [
        Key(
            MANAGER_NAME,
            "enum",
            "filesystem",
            choices=("filesystem", "hdfs"),
            doc="The exchange manager: `filesystem`; `hdfs` (Trino's HDFS exchange plugin) is "
            "the same manager on HDFS.",
        ),
        Key(
            FILESYSTEM_TYPE,
            "string",
            DEFAULT_FILESYSTEM_NAME,
            doc="NAME of the client file etc/filesystem/NAME.properties. When the default "
            "`exchange` has no file and every base directory is local, the built-in "
            "local client is used.",
        ),
        Key(
            BASE_DIRECTORIES,
            "list",
            required=True,
            doc="Comma-separated base directories (paths or URIs); data is spread over all.",
            aliases=("exchange.base-directory",),
        ),
        Key(
            COMPRESSION_CODEC,
            "enum",
            None,
            choices_from=codec_names,
            doc="Block compression: NONE, LZ4 (default) or ZSTD.",
        ),
        Key(
            COMPRESSION_ENABLED,
            "bool",
            None,
            doc="Legacy: true means LZ4, false NONE, when exchange.compression-codec is absent.",
        ),
        Key(
            COMPRESSION_LEVEL,
            "int",
            None,
            minimum=-7,
            maximum=22,
            doc="ZSTD compression level (default 3); only with compression-codec=ZSTD.",
        ),
        Key(
            "exchange.compression-min-saving",
            "float",
            0.2,
            minimum=0,
            maximum=0.99,
            doc="A compressed block is kept only when it is at least this fraction smaller than "
            "its raw bytes; else the block is stored raw (as Arrow IPC's min_space_savings), and "
            "after a few such blocks the codec is not even tried for a while. LZ4 compresses "
            "poorly compressible data at about 500 MB/s a core, so saving a fraction s pays "
            "only where storage moves less than s x 500 MB/s a stream (100 MB/s at 0.2). "
            "0 keeps every block that shrinks at all.",
        ),
        Key(
            "exchange.encryption-enabled",
            "bool",
            True,
            doc="Encrypt spooled data with a per-query AES-256-GCM key kept in memory only.",
        ),
        Key(
            ENCRYPTION_KEY_FILE,
            "string",
            None,
            doc="File holding a 32-byte master key (64 hex characters; create it with "
            "`exchange-store keygen PATH`); relative paths are resolved against the current "
            "directory. Each query's key is derived from it (HKDF, never stored), so a "
            "restarted coordinator can reopen and resume a query. Absent: "
            "$XDG_DATA_HOME/exchange-store/exchange.key (~/.local/share/...), created on first "
            "use (mode 0600), so a coordinator restarted on the same machine resumes; set it "
            "for coordinators on several machines. Empty: random query keys that die with "
            "their coordinator. EXCHANGE_STORE_EXCHANGE_KEY (64 hex) wins over it.",
        ),
        Key(
            "exchange.sink-fsync-data-files",
            "bool",
            False,
            doc="fsync every data file (and its directory) before the attempt commits. Off by "
            "default, as in Trino and Spark, which never fsync spool data: a killed process "
            "loses nothing either way; after a machine crash a lost or torn page fails its "
            "checksum and the producing task runs again (lineage). The commit itself (the "
            "manifest's exclusive create) is always durable.",
        ),
        Key(
            "exchange.sink-max-file-size",
            "size",
            1 << 30,
            minimum=1,
            doc="A sink starts a new data file once the current one reaches this size.",
        ),
        Key(
            "exchange.max-page-storage-size",
            "size",
            16 * _MB,
            minimum=1,
            doc="Largest record add() accepts.",
        ),
        Key(
            "exchange.source-handle-target-data-size",
            "size",
            256 * _MB,
            minimum=1,
            doc="Source handles of one output partition are cut near this many stored bytes.",
        ),
        Key(
            "exchange.merge-threshold",
            "size",
            1 * _MB,
            minimum=0,
            doc=(
                "When the mean (data file, partition) piece is smaller, get_source_handles() "
                "merges the pieces so that a partition is one ranged read (object stores; 0B: "
                "never)."
            ),
        ),
        Key(
            "exchange.merge-target-size",
            "size",
            16 * _MB,
            minimum=1,
            doc="About how many bytes one merged file holds (neighbouring partitions).",
        ),
        Key(
            "exchange.merge-on-local-filesystem",
            "bool",
            False,
            doc="Merge small pieces on a local filesystem too (page-cache reads gain little).",
        ),
        Key(
            "exchange.source-max-files-per-handle",
            "int",
            100_000,
            minimum=1,
            doc=(
                "At most this many data files per source handle (the default cuts handles by "
                "data size alone: about 40 bytes per file and partition when pickled)."
            ),
        ),
        Key(
            "exchange.max-output-partition-count",
            "int",
            10_000,
            minimum=1,
            doc="create_exchange refuses more output partitions than this.",
        ),
        Key(
            "exchange.deduplication-buffer-size",
            "size",
            32 * _MB,
            minimum=0,
            doc="Result deduplication buffer of the scheduler (QUERY retry policy).",
        ),
        Key(
            "exchange.sink-buffer-pool-min-size",
            "int",
            10,
            minimum=0,
            doc="Accepted for Trino compatibility; the sink bounds memory with "
            "exchange.sink-max-buffer-size instead.",
        ),
        Key(
            "exchange.sink-buffers-per-partition",
            "int",
            2,
            minimum=2,
            doc="Accepted for Trino compatibility; see exchange.sink-max-buffer-size.",
        ),
        Key(
            "exchange.sink-max-buffer-size",
            "size",
            64 * _MB,
            minimum=1,
            doc="Total bytes one sink buffers (records not yet encoded plus blocks in flight), "
            "whatever the partition count; add() blocks beyond it.",
        ),
        Key(
            "exchange.block-size",
            "size",
            _MB,
            minimum=1,
            doc="Target raw size of a block (the unit of compression, encryption and reads).",
        ),
        Key(
            "exchange.source-concurrent-readers",
            "int",
            4,
            minimum=1,
            maximum=256,
            doc="Reader threads per source (read-ahead).",
        ),
        Key(
            "exchange.file-listing-parallelism",
            "int",
            50,
            minimum=1,
            doc="Accepted for Trino compatibility; readers use manifests, never listings.",
        ),
        Key(
            "exchange.lease-ttl",
            "duration",
            60.0,
            minimum=0.001,
            doc="An open exchange refreshes its lease every ttl/3; gc treats it as dead "
            "once the lease is older than this.",
        ),
        Key(
            "exchange.writer-threads",
            "int",
            2,
            minimum=1,
            maximum=64,
            doc="Threads compressing and encrypting a sink's blocks (used with a codec: lz4 and"
            " zstandard release the GIL; uncompressed blocks are encoded in the writing thread).",
        ),
        *_ENGINE_STORAGE_KEYS,
    ],
)


def default_key_file() -> str:
    """``$XDG_DATA_HOME/exchange-store/exchange.key`` (default ``~/.local/share``)."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data, "exchange-store", "exchange.key")


def is_local_path(path: str) -> bool:
    """Whether a base directory is on the local filesystem (a path or a ``file://`` URI)."""
    return "://" not in path or path.startswith("file://")


@dataclass(frozen=True, slots=True)
class ExchangeManagerConfig:
    """Typed ``exchange-manager.properties``.

    Attributes:
        base_directories: Absolute paths or URIs, in configured order.
        filesystem_name: NAME of ``etc/filesystem/NAME.properties``.
        filesystem_name_explicit: Whether ``exchange-filesystem-type`` was set.
        codec: NONE, LZ4 or ZSTD.
        compression_level: ZSTD level, or None for the codec's default.
        compression_min_saving: Least fraction a compressed block must save to be kept.
        encryption_enabled: Whether spooled data is encrypted.
        encryption_key_file: Absolute path of the master key file, or None (random keys).
        encryption_key_file_default: The key file is the per-user default (created on use).
        sink_fsync_data_files: Whether data files are fsynced before the commit.
        sink_max_file_size: Rotation size of data files.
        max_page_storage_size: Largest record.
        source_handle_target_data_size: Where source handles are cut.
        source_max_files_per_handle: Most files in one source handle.
        merge_threshold: Merge pieces when their mean size is below this (0: never).
        merge_target_size: Bytes per merged file.
        merge_on_local_filesystem: Merge on a local filesystem too.
        max_output_partition_count: Most output partitions per exchange.
        deduplication_buffer_size: For the scheduler.
        sink_max_buffer_size: Total bytes a sink may hold.
        block_size: Target raw block size.
        source_concurrent_readers: Read-ahead threads per source.
        lease_ttl: Lease time to live, seconds.
        writer_threads: Encoding threads per sink.
        sink_buffer_pool_min_size: Trino compatibility, unused.
        sink_buffers_per_partition: Trino compatibility, unused.
        manager_name: ``exchange-manager.name``.
        engine_storage: Trino's storage keys as written (``exchange.s3.*``, ...), which build
            the client when no ``etc/filesystem`` file does.
        source: Where the configuration came from.
    """

    base_directories: tuple[str, ...]
    filesystem_name: str = DEFAULT_FILESYSTEM_NAME
    filesystem_name_explicit: bool = False
    codec: str = "LZ4"
    compression_level: int | None = None
    compression_min_saving: float = 0.2
    encryption_enabled: bool = True
    encryption_key_file: str | None = None
    encryption_key_file_default: bool = False
    sink_fsync_data_files: bool = False
    sink_max_file_size: int = 1 << 30
    max_page_storage_size: int = 16 * _MB
    source_handle_target_data_size: int = 256 * _MB
    source_max_files_per_handle: int = 100_000
    merge_threshold: int = 1 << 20
    merge_target_size: int = 16 << 20
    merge_on_local_filesystem: bool = False
    max_output_partition_count: int = 10_000
    deduplication_buffer_size: int = 32 * _MB
    sink_max_buffer_size: int = 64 * _MB
    block_size: int = _MB
    source_concurrent_readers: int = 4
    lease_ttl: float = 60.0
    writer_threads: int = 2
    sink_buffer_pool_min_size: int = 10
    sink_buffers_per_partition: int = 2
    manager_name: str = "filesystem"
    engine_storage: dict[str, str] = field(default_factory=dict)
    source: str = "<properties>"

    @classmethod
    def from_properties(
        cls,
        values: Mapping[str, str],
        source: str = "<properties>",
        lines: Mapping[str, int] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> ExchangeManagerConfig:
        """Validate the raw keys of ``exchange-manager.properties``.

        Args:
            values: Raw key/value strings.
            source: The file, for error messages.
            lines: Key to line number, for error messages.
            origins: Key to where it was set when not in the file (environment variable).

        Raises:
            ConfigurationError: unknown key, bad value, missing base directories, conflicting
                compression keys; the message names the file, the key and what is allowed.
        """
        lines = dict(lines or {})
        origins = dict(origins or {})
        parsed: dict[str, Any] = EXCHANGE_MANAGER_SCHEMA.parse(values, source, lines, origins)
        log_compatibility_keys(values, source)

        where = Locator(source, lines, origins).where
        resolved = base_directories(
            parsed[BASE_DIRECTORIES], BASE_DIRECTORIES, where(BASE_DIRECTORIES)
        )

        codec = parsed[COMPRESSION_CODEC]
        enabled = parsed[COMPRESSION_ENABLED]
        if codec is None:
            codec = "NONE" if enabled is False else "LZ4"
        elif enabled is not None and enabled != (codec != "NONE"):
            raise ConfigurationError(
                f"{where(COMPRESSION_ENABLED)}: {COMPRESSION_ENABLED}={str(enabled).lower()} "
                f"conflicts with {COMPRESSION_CODEC}={codec} ({where(COMPRESSION_CODEC)}); "
                f"set only {COMPRESSION_CODEC} (allowed: {' | '.join(codec_names())})"
            )
        level = parsed[COMPRESSION_LEVEL]
        if level is not None and codec != "ZSTD":
            raise ConfigurationError(
                f"{where(COMPRESSION_LEVEL)}: {COMPRESSION_LEVEL} applies only to "
                f"{COMPRESSION_CODEC}=ZSTD (the codec is {codec})"
            )
        if level is not None:
            try:
                get_codec("ZSTD", level=level)
            except ValueError as exc:
                raise ConfigurationError(
                    f"{where(COMPRESSION_LEVEL)}: {COMPRESSION_LEVEL}={level}: {exc}"
                ) from None
        fs_name = filesystem_name(parsed[FILESYSTEM_TYPE], FILESYSTEM_TYPE, where(FILESYSTEM_TYPE))
        given_key_file = parsed[ENCRYPTION_KEY_FILE]
        key_file = default_key_file() if given_key_file is None else given_key_file.strip()
        return cls(
            base_directories=resolved,
            filesystem_name=fs_name,
            filesystem_name_explicit=FILESYSTEM_TYPE in values,
            codec=codec,
            compression_level=level,
            compression_min_saving=parsed["exchange.compression-min-saving"],
            encryption_enabled=parsed["exchange.encryption-enabled"],
            encryption_key_file=os.path.abspath(key_file) if key_file else None,
            encryption_key_file_default=given_key_file is None,
            sink_fsync_data_files=parsed["exchange.sink-fsync-data-files"],
            sink_max_file_size=parsed["exchange.sink-max-file-size"],
            max_page_storage_size=parsed["exchange.max-page-storage-size"],
            source_handle_target_data_size=parsed["exchange.source-handle-target-data-size"],
            source_max_files_per_handle=parsed["exchange.source-max-files-per-handle"],
            merge_threshold=parsed["exchange.merge-threshold"],
            merge_target_size=parsed["exchange.merge-target-size"],
            merge_on_local_filesystem=parsed["exchange.merge-on-local-filesystem"],
            max_output_partition_count=parsed["exchange.max-output-partition-count"],
            deduplication_buffer_size=parsed["exchange.deduplication-buffer-size"],
            sink_max_buffer_size=parsed["exchange.sink-max-buffer-size"],
            block_size=parsed["exchange.block-size"],
            source_concurrent_readers=parsed["exchange.source-concurrent-readers"],
            lease_ttl=parsed["exchange.lease-ttl"],
            writer_threads=parsed["exchange.writer-threads"],
            sink_buffer_pool_min_size=parsed["exchange.sink-buffer-pool-min-size"],
            sink_buffers_per_partition=parsed["exchange.sink-buffers-per-partition"],
            manager_name=parsed[MANAGER_NAME],
            engine_storage={
                k: str(v)
                for k, v in values.items()
                if k.startswith(ENGINE_STORAGE_PREFIXES) or k == "hdfs.config.resources"
            },
            source=source,
        )

    @property
    def all_local(self) -> bool:
        """Whether every base directory is a local path."""
        return all(is_local_path(b) for b in self.base_directories)
