"""Value objects passed between the coordinator and workers: ids and handles.

Every handle is a small frozen, slotted, picklable dataclass. Handles that carry the per-query
AES key keep it out of ``repr``/``str`` (``field(repr=False)``); it travels only by pickling to
the worker that needs it and is never written to storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exchange_store.format import BlockRef
from exchange_store.ids import check_id, check_non_negative_int

__all__ = [
    "ExchangeContext",
    "ExchangeSinkHandle",
    "ExchangeSinkInstanceHandle",
    "ExchangeSourceHandle",
    "SourceFile",
]


@dataclass(frozen=True, slots=True)
class ExchangeContext:
    """Names one exchange: the query it belongs to and its id within the query.

    Raises:
        InvalidArgumentError: an id is not 1 to 128 characters of ``[A-Za-z0-9_-]``.
    """

    query_id: str
    exchange_id: str

    def __post_init__(self) -> None:
        check_id(self.query_id, "query_id")
        check_id(self.exchange_id, "exchange_id")

    def __str__(self) -> str:
        return f"{self.query_id}/{self.exchange_id}"


@dataclass(frozen=True, slots=True)
class ExchangeSinkHandle:
    """One task partition (writer) of an exchange, as returned by ``Exchange.add_sink``.

    Attributes:
        query_id: The query.
        exchange_id: The exchange.
        task_partition_id: The task partition this sink writes for.
        exchange_token: Random id of the coordinator-side exchange object that issued it.
    """

    query_id: str
    exchange_id: str
    task_partition_id: int
    exchange_token: str

    def __post_init__(self) -> None:
        check_id(self.query_id, "query_id")
        check_id(self.exchange_id, "exchange_id")
        check_non_negative_int(self.task_partition_id, "task_partition_id")


@dataclass(frozen=True, slots=True)
class ExchangeSinkInstanceHandle:
    """Everything a worker needs to write one attempt of one task partition.

    Attributes:
        sink: The task partition's handle.
        attempt_id: The attempt.
        output_partition_count: Valid ``partition_id`` values are ``0 .. count-1``.
        preserve_order: Whether the exchange keeps records in write order per partition.
        base_directory: The base directory the attempt writes under.
        attempt_directory: Full path of the attempt's directory (its only write location).
        codec: Compression codec name (NONE, LZ4, ZSTD).
        compression_level: ZSTD level, or None for the default.
        block_size: Target raw block size.
        sink_max_file_size: Data file rotation size.
        max_page_storage_size: Largest record accepted.
        key: The per-query AES-256 key, or None without encryption. Never shown.
    """

    sink: ExchangeSinkHandle
    attempt_id: int
    output_partition_count: int
    preserve_order: bool
    base_directory: str
    attempt_directory: str
    codec: str
    compression_level: int | None
    block_size: int
    sink_max_file_size: int
    max_page_storage_size: int
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_non_negative_int(self.attempt_id, "attempt_id")

    @property
    def query_id(self) -> str:
        """The query."""
        return self.sink.query_id

    @property
    def exchange_id(self) -> str:
        """The exchange."""
        return self.sink.exchange_id

    @property
    def task_partition_id(self) -> int:
        """The task partition."""
        return self.sink.task_partition_id

    @property
    def encrypted(self) -> bool:
        """Whether the attempt's data is encrypted."""
        return self.key is not None


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The blocks of one output partition in one committed data file.

    Attributes:
        path: Full path of the data file.
        file_id: The file's random id (from its header and the manifest).
        context: Associated data the file was written with.
        task_partition_id: The task partition that wrote it.
        attempt_id: The (selected) attempt that wrote it.
        blocks: The partition's blocks, in file order.
    """

    path: str
    file_id: bytes
    context: bytes
    task_partition_id: int
    attempt_id: int
    blocks: tuple[BlockRef, ...]

    @property
    def data_size(self) -> int:
        """Stored bytes of these blocks."""
        return sum(b.length for b in self.blocks)


@dataclass(frozen=True, slots=True)
class ExchangeSourceHandle:
    """Part (or all) of one output partition's data, for a reader.

    Attributes:
        query_id: The query.
        exchange_id: The exchange.
        partition_id: The output partition.
        data_size: Bytes on storage covered by this handle.
        files: The data to read, in order (by task partition, then file).
        preserve_order: Read each task partition's blocks strictly in order.
        codec: Compression codec name.
        compression_level: ZSTD level or None.
        key: The per-query AES key or None. Never shown.
    """

    query_id: str
    exchange_id: str
    partition_id: int
    data_size: int
    files: tuple[SourceFile, ...] = field(repr=False)
    preserve_order: bool
    codec: str
    compression_level: int | None
    key: bytes | None = field(default=None, repr=False)

    @property
    def encrypted(self) -> bool:
        """Whether the data is encrypted."""
        return self.key is not None

    @property
    def file_count(self) -> int:
        """How many data files the handle reads from."""
        return len(self.files)

    @property
    def record_count(self) -> int:
        """How many records the handle covers."""
        return sum(b.records for f in self.files for b in f.blocks)
