"""Readers of record files: one partition by ranged reads, or a whole file, validating all.

Both read in bounded chunks (at most ``max_coalesce`` bytes, or one block when a block is
larger), decode and return records lazily, and raise :class:`IntegrityError` on any mismatch
before returning a record of a failing block.
"""

from __future__ import annotations

import hmac
import itertools
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from exchange_store.errors import IntegrityError, InvalidArgumentError, UnknownFormatVersionError
from exchange_store.format.block import (
    Buffer,
    FileKeys,
    check_context,
    check_file_id,
    decode_block_view,
    reader_keys,
)
from exchange_store.format.model import BlockRef, FileSummary, FormatOptions, decode_blocks
from exchange_store.format.structs import (
    END_MAGIC,
    FILE_ENCRYPTED,
    FILE_FLAGS_KNOWN,
    FILE_HEADER,
    HEADER_SIZE,
    MAGIC,
    TRAILER,
    TRAILER_SIZE,
    VERSION,
    crc,
)
from exchange_store.format.writer import footer_auth

__all__ = [
    "DEFAULT_MAX_COALESCE",
    "RangeReader",
    "UnknownFormatVersionError",
    "decode_block",
    "read_file",
    "read_partition",
    "read_partition_blocks",
    "read_stream",
    "read_summary",
]

DEFAULT_MAX_COALESCE = 8 << 20
_TAIL_READ = 64 << 10


class RangeReader(Protocol):
    """What the readers need of a filesystem client (``FileSystemClient`` has it)."""

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; fewer only when the file ends first."""
        ...

    def size(self, path: str) -> int:
        """Size of the file in bytes."""
        ...


def _check_options(options: object) -> FormatOptions:
    if not isinstance(options, FormatOptions):
        raise InvalidArgumentError(f"options must be FormatOptions, got {options!r}")
    return options


def decode_block(
    data: Buffer,
    ref: BlockRef,
    file_id: bytes,
    options: FormatOptions,
    context: bytes,
    *,
    where: str = "<block>",
) -> list[bytes]:
    """Check and decode one block's stored bytes (exactly ``ref.length`` of them).

    Raises:
        IntegrityError: the bytes are not that block of that file under that key and context.
    """
    keys = reader_keys(check_file_id(file_id), _check_options(options).key, check_context(context))
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    return decode_block_view(view, ref, keys, options.codec, where)


def _check_read_args(max_coalesce: int, max_gap: int, readahead: int | None) -> None:
    for name, value, low in (
        ("max_coalesce", max_coalesce, 1),
        ("max_gap", max_gap, 0),
        ("readahead", 0 if readahead is None else readahead, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidArgumentError(f"invalid {name} {value!r}: must be an integer >= {low}")


def _groups(
    blocks: Sequence[BlockRef], max_coalesce: int, max_gap: int, max_raw: int | None
) -> Iterator[tuple[int, int, list[BlockRef]]]:
    """Runs of neighbouring blocks: (start, length, blocks).

    Each run is at most ``max_coalesce`` bytes long on storage and, when ``max_raw`` is
    given, holds at most that many raw bytes (a larger block still makes a run of its own).
    """
    group: list[BlockRef] = []
    start = end = raw = 0
    for ref in blocks:
        if (
            group
            and end <= ref.offset <= end + max_gap
            and ref.offset + ref.length - start <= max_coalesce
            and (max_raw is None or raw + ref.raw_size <= max_raw)
        ):
            group.append(ref)
            end = ref.offset + ref.length
            raw += ref.raw_size
            continue
        if group:
            yield start, end - start, group
        group = [ref]
        start, end, raw = ref.offset, ref.offset + ref.length, ref.raw_size
    if group:
        yield start, end - start, group


def _read_exact(client: RangeReader, path: str, offset: int, length: int) -> memoryview:
    data = client.read_range(path, offset, length)
    if len(data) != length:
        raise IntegrityError(
            f"{path}: short read: {len(data)} of {length} bytes at offset {offset}"
            " (file truncated?)"
        )
    return memoryview(data)


def _read_blocks(
    client: RangeReader,
    path: str,
    blocks: Sequence[BlockRef],
    keys: FileKeys | Mapping[int, FileKeys],
    options: FormatOptions,
    max_coalesce: int,
    max_gap: int,
    readahead: int | None,
) -> Iterator[tuple[BlockRef, list[bytes]]]:
    """Read and decode ``blocks`` in order, group by group.

    Without read-ahead each group is read, then its blocks are decoded one at a time as the
    caller asks for them (only one block's records are alive at once). With ``readahead`` > 0
    (None: ``options.threads``) the next groups are read and decoded ahead on
    ``min(readahead, options.workers or 1)`` threads: the codecs and CRC32C release the GIL,
    so decoding uses more than one core. A group then holds at most
    ``max_coalesce`` raw bytes as well, so at most ``readahead + 1`` groups of that size are
    in flight; results are still yielded in order.
    """
    ahead = options.threads if readahead is None else readahead
    codec = options.codec

    def decode(data: memoryview, start: int, ref: BlockRef) -> list[bytes]:
        offset = ref.offset - start
        # One file's keys, or each block's own (blocks copied from several files: by offset).
        block_keys = keys if isinstance(keys, FileKeys) else keys[ref.offset]
        return decode_block_view(data[offset : offset + ref.length], ref, block_keys, codec, path)

    if ahead <= 0 or len(blocks) < 2:
        for start, length, group in _groups(blocks, max_coalesce, max_gap, None):
            data = _read_exact(client, path, start, length)
            for ref in group:
                yield ref, decode(data, start, ref)
        return

    def load(start: int, length: int, group: list[BlockRef]) -> list[tuple[BlockRef, list[bytes]]]:
        data = _read_exact(client, path, start, length)
        return [(ref, decode(data, start, ref)) for ref in group]

    pending: deque[Future[list[tuple[BlockRef, list[bytes]]]]] = deque()
    pool = ThreadPoolExecutor(min(ahead, options.workers or 1), thread_name_prefix="xs-read")
    try:
        for start, length, group in _groups(blocks, max_coalesce, max_gap, max_coalesce):
            pending.append(pool.submit(load, start, length, group))
            if len(pending) > ahead:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def read_partition_blocks(
    client: RangeReader,
    path: str,
    file_id: bytes,
    blocks: Sequence[BlockRef],
    options: FormatOptions,
    context: bytes,
    *,
    max_coalesce: int = DEFAULT_MAX_COALESCE,
    max_gap: int = 0,
    readahead: int | None = None,
) -> Generator[list[bytes], None, None]:
    """As :func:`read_partition`, but one list of records per block (fewer hand-offs).

    Each list holds every record of one block, checked as a whole before it is returned.
    Arguments are checked at once; reading happens as the iterator is consumed.
    """
    keys = reader_keys(check_file_id(file_id), _check_options(options).key, check_context(context))
    _check_read_args(max_coalesce, max_gap, readahead)
    refs = tuple(blocks)
    for ref in refs:
        if not isinstance(ref, BlockRef):
            raise InvalidArgumentError(f"blocks must be BlockRef, got {ref!r}")

    def block_records() -> Generator[list[bytes], None, None]:
        for _, recs in _read_blocks(
            client, path, refs, keys, options, max_coalesce, max_gap, readahead
        ):
            yield recs

    return block_records()


def read_copied_blocks(
    client: RangeReader,
    path: str,
    pieces: Sequence[tuple[bytes, bytes, Sequence[BlockRef]]],
    options: FormatOptions,
    *,
    max_coalesce: int = DEFAULT_MAX_COALESCE,
    max_gap: int = 0,
) -> Generator[list[bytes], None, None]:
    """Read blocks that were copied unchanged from several record files into one file.

    Each piece is ``(file_id, context, blocks)``: blocks written into the file identified by
    ``file_id`` and ``context``, now at the offsets given in ``path``. Each block is checked
    against its own file's id, context and index (so a copied block is exactly as safe as the
    original), while neighbouring blocks of all pieces are fetched in shared ranged reads.
    One list of records per block, in offset order.

    Raises:
        InvalidArgumentError: bad arguments, or two blocks at one offset.
    """
    _check_read_args(max_coalesce, max_gap, 0)
    key = _check_options(options).key
    by_offset: dict[int, FileKeys] = {}
    refs: list[BlockRef] = []
    for file_id, context, blocks in pieces:
        keys = reader_keys(check_file_id(file_id), key, check_context(context))
        for ref in blocks:
            if not isinstance(ref, BlockRef):
                raise InvalidArgumentError(f"blocks must be BlockRef, got {ref!r}")
            if ref.offset in by_offset:
                raise InvalidArgumentError(f"{path}: two blocks listed at offset {ref.offset}")
            by_offset[ref.offset] = keys
            refs.append(ref)
    refs.sort(key=lambda r: r.offset)

    def block_records() -> Generator[list[bytes], None, None]:
        for _, recs in _read_blocks(
            client, path, refs, by_offset, options, max_coalesce, max_gap, 0
        ):
            yield recs

    return block_records()


def read_partition(
    client: RangeReader,
    path: str,
    file_id: bytes,
    blocks: Sequence[BlockRef],
    options: FormatOptions,
    context: bytes,
    *,
    max_coalesce: int = DEFAULT_MAX_COALESCE,
    max_gap: int = 0,
    readahead: int | None = None,
) -> Iterator[bytes]:
    """The records of ``blocks`` (e.g. one partition's), in the given order.

    Reads only those blocks, with ``client.read_range``; runs of neighbouring blocks (at most
    ``max_gap`` bytes apart, at most ``max_coalesce`` bytes in all) are read in one request.
    Arguments are checked at once; reading happens as the iterator is consumed.

    Args:
        client: A FileSystemClient (anything with ``read_range``).
        path: The data file.
        file_id: The file's id (from its FileSummary, kept in the manifest).
        blocks: The blocks to read, from the same FileSummary.
        options: Key and codec; the key must be the writer's.
        context: The writer's context bytes.
        max_coalesce: Largest single read (a larger block is still read alone, whole).
        max_gap: Largest gap between blocks read in one request (the gap's bytes are read and
            dropped; worth it on object stores, where a request costs more than bytes).
        readahead: Groups read and decoded ahead on threads (0: all in the calling thread;
            None, the default: ``options.threads``, as many threads as the writer encodes on).

    Raises:
        IntegrityError: a short read or any failing check; no record of that block is returned.
        InvalidArgumentError: bad arguments (raised by this call, not by iteration).
    """
    per_block = read_partition_blocks(
        client,
        path,
        file_id,
        blocks,
        options,
        context,
        max_coalesce=max_coalesce,
        max_gap=max_gap,
        readahead=readahead,
    )
    return itertools.chain.from_iterable(per_block)


@dataclass(frozen=True, slots=True)
class _Opened:
    summary: FileSummary
    keys: FileKeys


def _open(client: RangeReader, path: str, options: FormatOptions, context: bytes) -> _Opened:
    """Read and check the header and footer of ``path``."""
    size = client.size(path)
    if size < HEADER_SIZE + TRAILER_SIZE:
        raise IntegrityError(f"{path}: {size} bytes is too short for a record file (truncated?)")
    tail_len = min(size, _TAIL_READ)
    tail = _read_exact(client, path, size - tail_len, tail_len)
    trailer = tail[tail_len - TRAILER_SIZE :]
    (body_len, file_len, count, version, flags, reserved, stored_crc, tag, end_magic) = (
        TRAILER.unpack(trailer)
    )
    if end_magic != END_MAGIC:
        raise IntegrityError(f"{path}: no record-file trailer at the end (truncated or not ours)")
    if file_len != size:
        raise IntegrityError(f"{path}: trailer says {file_len} bytes, file has {size} (truncated?)")
    if version != VERSION:
        raise UnknownFormatVersionError(
            f"{path}: record-file format version {version}; this reader knows {VERSION}"
        )
    if body_len > size - HEADER_SIZE - TRAILER_SIZE:
        raise IntegrityError(f"{path}: footer length {body_len} exceeds the file")
    header = (
        bytes(tail[:HEADER_SIZE])
        if size == tail_len
        else bytes(_read_exact(client, path, 0, HEADER_SIZE))
    )
    magic, h_version, h_flags, h_reserved, file_id, h_reserved2, h_crc = FILE_HEADER.unpack(header)
    if magic != MAGIC:
        raise IntegrityError(f"{path}: not a record file (magic {magic!r})")
    if crc(header[:-4]) != h_crc:
        raise IntegrityError(f"{path}: file header checksum mismatch")
    if h_version != VERSION:
        raise UnknownFormatVersionError(
            f"{path}: record-file format version {h_version}; this reader knows {VERSION}"
        )
    if h_flags & ~FILE_FLAGS_KNOWN or h_reserved or h_reserved2 or h_flags != flags or reserved:
        raise IntegrityError(f"{path}: unknown or inconsistent file flags")
    encrypted = bool(h_flags & FILE_ENCRYPTED)
    if encrypted and options.key is None:
        raise IntegrityError(f"{path}: file is encrypted but no key was given")
    if not encrypted and options.key is not None:
        raise IntegrityError(f"{path}: file is not encrypted but a key was given")
    body_start = size - TRAILER_SIZE - body_len
    if body_len + TRAILER_SIZE <= tail_len:
        body = tail[tail_len - TRAILER_SIZE - body_len : tail_len - TRAILER_SIZE]
    else:
        body = _read_exact(client, path, body_start, body_len)
    keys = reader_keys(file_id, options.key, context)
    head = bytes(trailer[:24])
    expect_crc, expect_tag = footer_auth(keys, header, head, body)
    if expect_crc != stored_crc:
        raise IntegrityError(f"{path}: footer checksum mismatch")
    if not hmac.compare_digest(tag, expect_tag):
        raise IntegrityError(
            f"{path}: footer authentication failed (wrong key or context, or data changed)"
        )
    blocks, pos = decode_blocks(body, 0, f"{path}: footer")
    if pos != body_len or len(blocks) != count:
        raise IntegrityError(f"{path}: footer index is malformed")
    end = HEADER_SIZE
    for i, ref in enumerate(blocks):
        if ref.index != i or ref.offset != end or ref.length < 36:
            raise IntegrityError(f"{path}: footer index entry {i} is out of place")
        end = ref.offset + ref.length
    if end != body_start:
        raise IntegrityError(f"{path}: blocks end at {end}, footer starts at {body_start}")
    return _Opened(FileSummary(file_id, size, blocks), keys)


def read_summary(
    client: RangeReader, path: str, options: FormatOptions, context: bytes
) -> FileSummary:
    """Read and validate the header and footer of ``path``; returns its block index.

    Raises:
        IntegrityError: truncated or changed file, wrong key or context.
        UnknownFormatVersionError: written by an unknown format version.
    """
    return _open(client, path, _check_options(options), check_context(context)).summary


def read_file(
    client: RangeReader,
    path: str,
    options: FormatOptions,
    context: bytes,
    *,
    max_coalesce: int = DEFAULT_MAX_COALESCE,
    readahead: int | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """Every block of ``path`` as ``(partition, records)``, validating the whole file.

    Reads the footer first (ranged reads), then the blocks in chunks of at most
    ``max_coalesce`` bytes. Arguments are checked at once; I/O starts on first iteration.

    Raises:
        IntegrityError: truncation at any byte, any changed byte, wrong key or context.
        UnknownFormatVersionError: written by an unknown format version.
    """
    _check_options(options)
    ctx = check_context(context)
    _check_read_args(max_coalesce, 0, readahead)

    def blocks() -> Iterator[tuple[int, list[bytes]]]:
        opened = _open(client, path, options, ctx)
        for ref, recs in _read_blocks(
            client, path, opened.summary.blocks, opened.keys, options, max_coalesce, 0, readahead
        ):
            yield ref.partition, recs

    return blocks()


def read_stream(
    client: RangeReader,
    path: str,
    options: FormatOptions,
    context: bytes,
    *,
    max_coalesce: int = DEFAULT_MAX_COALESCE,
    readahead: int | None = None,
) -> Iterator[bytes]:
    """The chunks written by a RecordStreamWriter, in order (see :func:`read_file`)."""
    inner = read_file(
        client, path, options, context, max_coalesce=max_coalesce, readahead=readahead
    )

    def chunks() -> Iterator[bytes]:
        for partition, recs in inner:
            if partition != 0:
                raise IntegrityError(f"{path}: stream file holds a block of partition {partition}")
            yield from recs

    return chunks()
