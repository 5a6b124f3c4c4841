"""Streaming writers of record files: bounded memory, blocks encoded on a small thread pool.

The calling thread frames each block's records (one copy, so the caller may reuse its buffers
at once) and hands the block to the pool, which compresses, encrypts and checksums it; lz4,
zstandard and crc32c release the GIL, so two workers use two cores. Without compression the
calling thread does it all (see :attr:`FormatOptions.threads`). Encoded
blocks are written to the stream by the calling thread, in call order. At most
``max_pending_blocks`` blocks are in flight: beyond that :meth:`RecordFileWriter.write_block`
waits for the oldest one (back-pressure), so memory stays near
``(max_pending_blocks + 1) * block_size``.

Writers are not thread-safe: one thread drives a writer.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from exchange_store.errors import InvalidArgumentError
from exchange_store.format.block import (
    Buffer,
    CompressionProbe,
    FileKeys,
    build_record_section,
    check_context,
    encode_block,
)
from exchange_store.format.model import BlockRef, FileSummary, FormatOptions, encode_blocks
from exchange_store.format.structs import (
    END_MAGIC,
    FILE_ENCRYPTED,
    FILE_HEADER,
    FILE_ID_SIZE,
    FOOTER_NONCE,
    MAGIC,
    MAX_BLOCKS,
    MAX_U32,
    TRAILER,
    TRAILER_SIZE,
    VERSION,
    crc,
    seeded_crc,
)

__all__ = ["RecordFileWriter", "RecordStreamWriter", "WritableStream"]

_ZERO_TAG = bytes(16)


class WritableStream(Protocol):
    """Anything with ``write(bytes)``: an OutputStream of a FileSystemClient, a file, a BytesIO."""

    def write(self, data: bytes, /) -> object:
        """Append ``data``."""
        ...


def file_header(file_id: bytes, encrypted: bool) -> bytes:
    """The 32-byte file header."""
    flags = FILE_ENCRYPTED if encrypted else 0
    head = FILE_HEADER.pack(MAGIC, VERSION, flags, 0, file_id, 0, 0)[:-4]
    return head + struct.pack("<I", crc(head))


def footer_auth(keys: FileKeys, header: bytes, head: bytes, body: Buffer) -> tuple[int, bytes]:
    """The footer's CRC32C and (when encrypted) its GMAC tag.

    The CRC covers ``crc_prefix || header || trailer[:24] || body``; the tag authenticates
    ``"XSRF-footer" || header || trailer[:28] || body || context`` under the file subkey with
    the all-ones nonce.
    """
    checksum = seeded_crc(keys.crc_seed, header, head, body)
    if keys.cipher is None:
        return checksum, _ZERO_TAG
    aad = b"".join((b"XSRF-footer", header, head, struct.pack("<I", checksum), body, keys.context))
    return checksum, keys.cipher.encrypt(FOOTER_NONCE, b"", aad)


class RecordFileWriter:
    """Writes one record file: a header, blocks of records of any partitions, a footer.

    Args:
        stream: Where the bytes go (``write(bytes)``); the writer never closes it.
        options: Codec, block size, key, workers and back-pressure.
        context: Bytes naming the file's place (e.g. ``b"q1/stage-1/tp3/a0/f2"``); bound into
            every block and the footer, so a reader must pass the same bytes.

    Raises:
        InvalidArgumentError: ``context`` is not bytes.
    """

    def __init__(self, stream: WritableStream, options: FormatOptions, context: bytes) -> None:
        if not isinstance(options, FormatOptions):
            raise InvalidArgumentError(f"options must be FormatOptions, got {options!r}")
        self._stream = stream
        self._options = options
        self.file_id = os.urandom(FILE_ID_SIZE)
        self._keys = FileKeys(self.file_id, options.key, check_context(context))
        self._probe = CompressionProbe(min_saving=options.min_saving)
        self._header = file_header(self.file_id, options.key is not None)
        self._pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(options.threads, thread_name_prefix="xs-format")
            if options.threads > 0
            else None
        )
        self._pending: deque[tuple[Future[list[bytes]], int, int, int, int]] = deque()
        self._pending_bytes = 0
        self._blocks: list[BlockRef] = []
        self._bytes_written = 0
        self._state = "open"
        self._write(self._header)

    # ------------------------------------------------------------------ properties

    @property
    def options(self) -> FormatOptions:
        """The options the file is written with."""
        return self._options

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the stream so far (blocks still being encoded excluded)."""
        return self._bytes_written

    @property
    def pending_bytes(self) -> int:
        """Raw bytes of blocks handed to the pool and not yet written."""
        return self._pending_bytes

    @property
    def block_count(self) -> int:
        """Blocks accepted so far (written or pending)."""
        return len(self._blocks) + len(self._pending)

    # ------------------------------------------------------------------ writing

    def write_block(self, partition: int, records: Sequence[Buffer]) -> None:
        """Add one block holding ``records``, all of output partition ``partition``.

        Blocks appear in the file in call order. The records are copied before this returns.
        May wait for earlier blocks when ``max_pending_blocks`` are in flight.

        Raises:
            InvalidArgumentError: bad partition or records, or the writer is finished/aborted.
            Exception: whatever the stream or the encoding raised (the writer is then unusable).
        """
        self._check_open()
        if (
            isinstance(partition, bool)
            or not isinstance(partition, int)
            or not (0 <= partition <= MAX_U32)
        ):
            raise InvalidArgumentError(
                f"invalid partition {partition!r}: must be an integer in [0, {MAX_U32}]"
            )
        if isinstance(records, bytes | bytearray | memoryview | str):
            raise InvalidArgumentError("records must be a sequence of bytes-like records")
        index = self.block_count
        if index >= MAX_BLOCKS:
            raise InvalidArgumentError(f"a record file holds at most {MAX_BLOCKS} blocks")
        section, count = build_record_section(records)
        try:
            if self._pool is None:
                parts = encode_block(
                    self._keys, self._options.codec, section, index, partition, count, self._probe
                )
                self._emit(parts, index, partition, count, len(section))
                return
            future = self._pool.submit(
                encode_block,
                self._keys,
                self._options.codec,
                section,
                index,
                partition,
                count,
                self._probe,
            )
            self._pending.append((future, index, partition, count, len(section)))
            self._pending_bytes += len(section)
            while len(self._pending) > self._options.max_pending_blocks:
                self._drain_one()
            while self._pending and self._pending[0][0].done():
                self._drain_one()
        except BaseException:
            self._fail()
            raise

    def finish(self) -> FileSummary:
        """Write every pending block and the footer; returns what the file holds.

        Does not close the stream (the caller does, to publish the file).
        """
        self._check_open()
        try:
            while self._pending:
                self._drain_one()
            body = bytearray()
            encode_blocks(self._blocks, body)
            length = self._bytes_written + len(body) + TRAILER_SIZE
            flags = FILE_ENCRYPTED if self._options.key is not None else 0
            head = TRAILER.pack(
                len(body), length, len(self._blocks), VERSION, flags, 0, 0, _ZERO_TAG, END_MAGIC
            )[:24]
            checksum, tag = footer_auth(self._keys, self._header, head, body)
            self._write(bytes(body) + head + struct.pack("<I", checksum) + tag + END_MAGIC)
        except BaseException:
            self._fail()
            raise
        self._state = "finished"
        self._shutdown()
        return FileSummary(self.file_id, self._bytes_written, tuple(self._blocks))

    def abort(self) -> None:
        """Drop pending work; the stream is not touched. Safe to call more than once."""
        if self._state in ("open", "failed"):
            self._state = "aborted"
        self._fail()

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._state != "open":
            raise InvalidArgumentError(f"record file writer is {self._state}")

    def _drain_one(self) -> None:
        future, index, partition, count, raw_size = self._pending.popleft()
        self._pending_bytes -= raw_size
        self._emit(future.result(), index, partition, count, raw_size)

    def _emit(self, parts: list[bytes], index: int, partition: int, count: int, raw: int) -> None:
        offset = self._bytes_written
        for part in parts:
            self._write(part)
        self._blocks.append(
            BlockRef(index, partition, offset, self._bytes_written - offset, count, raw)
        )

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._bytes_written += len(data)

    def _fail(self) -> None:
        if self._state == "open":
            self._state = "failed"
        for future, *_ in self._pending:
            future.cancel()
        self._pending.clear()
        self._pending_bytes = 0
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return (
            f"RecordFileWriter(file_id={self.file_id.hex()}, state={self._state},"
            f" blocks={self.block_count}, bytes_written={self._bytes_written})"
        )


class RecordStreamWriter:
    """One long byte stream (a task's state snapshot) as blocks of partition 0.

    :meth:`write` buffers bytes and cuts them into ``block_size`` chunks; each chunk is one
    record of its own block. :func:`~exchange_store.format.read_stream` returns the chunks.
    """

    def __init__(self, stream: WritableStream, options: FormatOptions, context: bytes) -> None:
        self._writer = RecordFileWriter(stream, options, context)
        self._block_size = options.block_size
        self._buffer = bytearray()

    @property
    def file_id(self) -> bytes:
        """The file's random id."""
        return self._writer.file_id

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the stream so far."""
        return self._writer.bytes_written

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered or being encoded."""
        return self._writer.pending_bytes + len(self._buffer)

    def write(self, data: Buffer) -> None:
        """Append ``data`` to the stream (copied before this returns)."""
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        bs = self._block_size
        pos = 0
        if self._buffer:
            take = min(bs - len(self._buffer), len(view))
            self._buffer += view[:take]
            pos = take
            if len(self._buffer) < bs:
                return
            self._writer.write_block(0, [self._buffer])
            self._buffer = bytearray()
        while len(view) - pos >= bs:
            self._writer.write_block(0, [view[pos : pos + bs]])
            pos += bs
        if pos < len(view):
            self._buffer += view[pos:]

    def finish(self) -> FileSummary:
        """Flush the last chunk and write the footer; the stream is not closed."""
        if self._buffer:
            self._writer.write_block(0, [self._buffer])
            self._buffer = bytearray()
        return self._writer.finish()

    def abort(self) -> None:
        """Drop buffered and pending data; the stream is not touched."""
        self._buffer = bytearray()
        self._writer.abort()
