"""Value objects passed between the coordinator and workers: ids and handles.

Every handle is a small frozen, slotted, picklable dataclass. A source handle keeps its
pieces (the blocks of its partition in each data file) packed as varints, about 40 bytes per
(file, partition); paths and associated data are derived from the ids on unpacking. Handles
that carry the per-query AES key keep it out of ``repr``/``str`` (``field(repr=False)``); it
travels only by pickling to the worker that needs it and is never written to storage.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exchange_store.errors import IntegrityError
from exchange_store.exchange.paths import (
    attempt_dir,
    base_directory_for,
    data_file_context,
    data_file_path,
    run_dir,
)
from exchange_store.format import BlockRef
from exchange_store.format.model import decode_blocks, encode_blocks
from exchange_store.format.structs import decode_varint, encode_varint
from exchange_store.ids import check_id, check_int_id

__all__ = [
    "ExchangeContext",
    "ExchangeSinkHandle",
    "ExchangeSinkInstanceHandle",
    "ExchangeSinkReceipt",
    "ExchangeSourceHandle",
    "SourceFile",
    "pack_source_files",
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
        check_int_id(self.task_partition_id, "task_partition_id")


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
        check_int_id(self.attempt_id, "attempt_id")

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
class ExchangeSinkReceipt:
    """What ``ExchangeSink.finish()`` returns: the commit of one attempt, small and picklable.

    A worker sends it back to the coordinator, whose ``Exchange.sink_finished(sink, attempt,
    receipt)`` then needs no storage read: ``manifest`` is the sealed manifest exactly as
    stored (checksummed, and authenticated with the per-query key when encryption is on), so a
    changed receipt is an :class:`~exchange_store.errors.IntegrityError`, never wrong data.

    Attributes:
        query_id: The query.
        exchange_id: The exchange.
        task_partition_id: The task partition.
        attempt_id: The attempt (the engine's id).
        run_id: The run of the attempt whose files were committed.
        partition_sizes: Stored bytes per output partition that has data.
        records: Records committed.
        file_count: Data files committed.
        manifest: The sealed manifest (the commit itself).
    """

    query_id: str
    exchange_id: str
    task_partition_id: int
    attempt_id: int
    run_id: str
    partition_sizes: Mapping[int, int] = field(repr=False)
    records: int
    file_count: int
    manifest: bytes = field(repr=False)

    @property
    def data_size(self) -> int:
        """Stored bytes of the committed data files' blocks."""
        return sum(self.partition_sizes.values())


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The blocks of one output partition in one committed data file.

    Attributes:
        path: Full path of the data file.
        file_id: The file's random id (from its header and the manifest).
        context: Associated data the file was written with.
        task_partition_id: The task partition that wrote it.
        attempt_id: The (selected) attempt that wrote it.
        run_id: The run of that attempt whose files were committed.
        file_index: ``n`` of ``data-{n}.xsf``.
        blocks: The partition's blocks, in file order.
    """

    path: str
    file_id: bytes
    context: bytes
    task_partition_id: int
    attempt_id: int
    run_id: str
    file_index: int
    blocks: tuple[BlockRef, ...]

    @property
    def data_size(self) -> int:
        """Stored bytes of these blocks."""
        return sum(b.length for b in self.blocks)

    def with_blocks(self, blocks: Sequence[BlockRef]) -> SourceFile:
        """The same file with other blocks."""
        return SourceFile(
            self.path,
            self.file_id,
            self.context,
            self.task_partition_id,
            self.attempt_id,
            self.run_id,
            self.file_index,
            tuple(blocks),
        )


def _data_file_path(base_directories: Sequence[str], q: str, e: str, f: SourceFile) -> str:
    return _data_file_place(
        tuple(base_directories), q, e, f.task_partition_id, f.attempt_id, f.run_id, f.file_index
    )


@functools.lru_cache(maxsize=4096)
def _data_file_place(
    base_directories: tuple[str, ...], q: str, e: str, tp: int, attempt: int, run: str, index: int
) -> str:
    """The path of a data file named by its ids (every partition's handle names each file)."""
    base = base_directory_for(base_directories, tp)
    return data_file_path(run_dir(attempt_dir(base, q, e, tp, attempt), run), index)


def pack_source_files(
    files: Sequence[SourceFile], base_directories: Sequence[str], query_id: str, exchange_id: str
) -> tuple[bytes, tuple[str, ...]]:
    """The compact form of ``files`` kept by a source handle (see :func:`_unpack`).

    Per file: a varint location (0: the data file its ids name; k: the k-th of the returned
    locations, a merged file holding copies of its blocks); varints task partition, attempt,
    file index; the run id (8 bytes); the file id (16 bytes); then the block list as the
    format's compact block index.

    Returns:
        The packed pieces and the locations they refer to.
    """
    out = bytearray()
    locations: dict[str, int] = {}
    encode_varint(len(files), out)
    for f in files:
        if f.path == _data_file_path(base_directories, query_id, exchange_id, f):
            encode_varint(0, out)
        else:
            encode_varint(locations.setdefault(f.path, len(locations) + 1), out)
        encode_varint(f.task_partition_id, out)
        encode_varint(f.attempt_id, out)
        encode_varint(f.file_index, out)
        out += bytes.fromhex(f.run_id)
        out += f.file_id
        encode_blocks(f.blocks, out)
    return bytes(out), tuple(locations)


def _unpack(handle: ExchangeSourceHandle) -> tuple[SourceFile, ...]:
    data = handle.pieces
    what = (
        f"source handle of {handle.query_id}/{handle.exchange_id} partition {handle.partition_id}"
    )
    q, e = handle.query_id, handle.exchange_id
    try:
        count, pos = decode_varint(data, 0, what)
        files = []
        for _ in range(count):
            location, pos = decode_varint(data, pos, what)
            tp, pos = decode_varint(data, pos, what)
            attempt, pos = decode_varint(data, pos, what)
            index, pos = decode_varint(data, pos, what)
            run = data[pos : pos + 8].hex()
            file_id = data[pos + 8 : pos + 24]
            if len(file_id) != 16:
                raise IntegrityError(f"{what}: cut short")
            blocks, pos = decode_blocks(data, pos + 24, what)
            path = (
                _data_file_place(tuple(handle.base_directories), q, e, tp, attempt, run, index)
                if location == 0
                else handle.locations[location - 1]
            )
            files.append(
                SourceFile(
                    path=path,
                    file_id=file_id,
                    context=data_file_context(q, e, tp, attempt, run, index),
                    task_partition_id=tp,
                    attempt_id=attempt,
                    run_id=run,
                    file_index=index,
                    blocks=blocks,
                )
            )
    except (ValueError, IndexError) as exc:
        raise IntegrityError(f"{what}: malformed: {exc}") from None
    if pos != len(data):
        raise IntegrityError(f"{what}: trailing bytes")
    return tuple(files)


@dataclass(frozen=True, slots=True)
class ExchangeSourceHandle:
    """Part (or all) of one output partition's data, for a reader.

    Attributes:
        query_id: The query.
        exchange_id: The exchange.
        partition_id: The output partition.
        data_size: Bytes on storage covered by this handle.
        base_directories: The exchange's base directories (paths are derived from them).
        pieces: The data to read, packed (:func:`pack_source_files`); see :attr:`files`.
        preserve_order: Read each task partition's blocks strictly in order.
        codec: Compression codec name.
        compression_level: ZSTD level or None.
        key: The per-query AES key or None. Never shown.
        locations: Merged files some pieces were copied into (see :func:`pack_source_files`).
    """

    query_id: str
    exchange_id: str
    partition_id: int
    data_size: int
    base_directories: tuple[str, ...] = field(repr=False)
    pieces: bytes = field(repr=False)
    preserve_order: bool
    codec: str
    compression_level: int | None
    key: bytes | None = field(default=None, repr=False)
    locations: tuple[str, ...] = field(default=(), repr=False)

    @property
    def encrypted(self) -> bool:
        """Whether the data is encrypted."""
        return self.key is not None

    @property
    def files(self) -> tuple[SourceFile, ...]:
        """The data to read, in order (by task partition, then file); decoded on each call.

        Raises:
            IntegrityError: the packed pieces are malformed.
        """
        return _unpack(self)

    @property
    def file_count(self) -> int:
        """How many data files the handle reads from."""
        return len(self.files)

    @property
    def record_count(self) -> int:
        """How many records the handle covers."""
        return sum(b.records for f in self.files for b in f.blocks)
