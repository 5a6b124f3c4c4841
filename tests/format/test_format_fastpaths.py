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


def test_large_records_of_every_buffer_type_round_trip() -> None:
    """Uncompressed blocks of large bytes, bytearray and memoryview records read back intact."""
    options = FormatOptions(codec=NoneCodec(), workers=0)
    big = [bytes([i]) * (8192 + i) for i in range(20)]
    blocks = [big[:5], [bytearray(b"x" * 9000), memoryview(b"y" * 9000)], big[5:], [b"s"]]
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, CTX)
    for i, recs in enumerate(blocks):
        writer.write_block(i % 3, recs)
    writer.finish()
    got = [r for _, recs in read_file(BytesClient(buf.getvalue()), "f", options, CTX) for r in recs]
    assert got == [bytes(r) for recs in blocks for r in recs]
