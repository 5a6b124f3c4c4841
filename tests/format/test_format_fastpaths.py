"""Block-wise partition reads (what the exchange source uses to hand over whole blocks)."""

from __future__ import annotations

import io

import pytest
from fmt_util import CTX, BytesClient

from exchange_store.codecs import Lz4Codec, NoneCodec
from exchange_store.format import (
    FormatOptions,
    RecordFileWriter,
    read_file,
    read_partition,
    read_partition_blocks,
)
from exchange_store.format import writer as writer_module


@pytest.mark.parametrize("codec", [NoneCodec(), Lz4Codec()], ids=["NONE", "LZ4"])
def test_read_partition_blocks_groups_records_by_block(codec: NoneCodec | Lz4Codec) -> None:
    options = FormatOptions(codec=codec, workers=0)
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, CTX)
    blocks = [[b"a", b"bb"], [b"ccc"], [b"d" * 1000, b"", b"e"]]
    for i, recs in enumerate(blocks):
        writer.write_block(i % 2, recs)
    summary = writer.finish()
    client = BytesClient(buf.getvalue())
    part0 = summary.partition_blocks(0)
    got = list(read_partition_blocks(client, "f", summary.file_id, part0, options, CTX))
    assert got == [blocks[0], blocks[2]]
    flat = list(read_partition(client, "f", summary.file_id, part0, options, CTX))
    assert flat == blocks[0] + blocks[2]


def _file_bytes(options: FormatOptions, blocks: list[list[bytes]], gathered: bool) -> bytes:
    """A record file written with gathered blocks, or with every block joined first."""
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, CTX)
    if not gathered:
        writer._gathered = lambda records: False  # type: ignore[method-assign]
    for i, recs in enumerate(blocks):
        writer.write_block(i % 3, recs)
    writer.finish()
    return buf.getvalue()


def test_gathered_blocks_are_the_joined_blocks_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large uncompressed records are written as parts; the file must not change at all."""
    options = FormatOptions(codec=NoneCodec(), workers=0)
    big = [bytes([i]) * (8192 + i) for i in range(20)]
    blocks = [big[:5], [bytearray(b"x" * 9000), memoryview(b"y" * 9000)], big[5:], [b"s"]]

    calls: list[int] = []
    real = writer_module.encode_plain_block

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "encode_plain_block", counted)
    monkeypatch.setattr(writer_module.os, "urandom", lambda n: bytes(range(n)))  # one file id
    fast = _file_bytes(options, blocks, gathered=True)
    assert len(calls) == 3  # the block of one small record is joined
    assert fast == _file_bytes(options, blocks, gathered=False)
    got = [r for _, recs in read_file(BytesClient(fast), "f", options, CTX) for r in recs]
    assert got == [bytes(r) for recs in blocks for r in recs]
