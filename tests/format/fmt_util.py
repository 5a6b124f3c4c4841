"""Helpers shared by the format tests."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.format import FileSummary, FormatOptions, RecordFileWriter

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CTX = b"q1/stage-1/tp3/a0/f2"


class BytesClient:
    """An in-memory RangeReader over one byte string (fast for exhaustive sweeps)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self.ranges.append((offset, length))
        return self.data[offset : offset + length]

    def size(self, path: str) -> int:
        return len(self.data)


class CountingLocalClient(LocalFileSystemClient):
    """The real local client, recording every ranged read."""

    def __init__(self, roots: Sequence[str]) -> None:
        super().__init__(roots)
        self.ranges: list[tuple[int, int]] = []

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self.ranges.append((offset, length))
        return super().read_range(path, offset, length)


def encode(
    options: FormatOptions,
    blocks: Iterable[tuple[int, Sequence[bytes]]],
    context: bytes = CTX,
) -> tuple[bytes, FileSummary]:
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, context)
    for partition, records in blocks:
        writer.write_block(partition, records)
    summary = writer.finish()
    return buf.getvalue(), summary


def write_local(
    client: LocalFileSystemClient,
    path: str,
    options: FormatOptions,
    blocks: Iterable[tuple[int, Sequence[bytes]]],
    context: bytes = CTX,
) -> FileSummary:
    stream = client.create(path)
    writer = RecordFileWriter(stream, options, context)
    for partition, records in blocks:
        writer.write_block(partition, records)
    summary = writer.finish()
    stream.close()
    return summary
