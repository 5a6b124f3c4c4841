"""The format over a real S3 API (moto server on loopback): multipart writes, ranged reads."""

from __future__ import annotations

import os

import pytest
from fmt_util import CTX, KEY

from exchange_store.codecs import ZstdCodec
from exchange_store.errors import IntegrityError
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.format import (
    FormatOptions,
    RecordFileWriter,
    RecordStreamWriter,
    read_file,
    read_partition,
    read_stream,
)

pytestmark = pytest.mark.s3


def test_exchange_and_stream_files_on_s3(s3_properties: dict[str, str], s3_root: str) -> None:
    client = load_filesystem(s3_properties, [s3_root])
    options = FormatOptions(codec=ZstdCodec(), key=KEY, block_size=64 << 10)
    path = f"{s3_root}/q1/stage-1/tp3/0/data-0.xsf"
    blocks = [(i % 3, [os.urandom(1000) * (i % 5 + 1), b""]) for i in range(24)]
    stream = client.create(path)
    writer = RecordFileWriter(stream, options, CTX)
    for partition, records in blocks:
        writer.write_block(partition, records)
    summary = writer.finish()
    stream.close()
    assert client.size(path) == summary.length
    for partition in range(3):
        got = list(
            read_partition(
                client,
                path,
                summary.file_id,
                summary.partition_blocks(partition),
                options,
                CTX,
                readahead=2,
            )
        )
        assert got == [r for p, rs in blocks if p == partition for r in rs]
    assert [p for p, _ in read_file(client, path, options, CTX)] == [p for p, _ in blocks]

    state = os.urandom(300_000)
    spath = f"{s3_root}/snap/1/task-0.xsf"
    stream = client.create(spath)
    swriter = RecordStreamWriter(stream, options, b"job/1/task-0")
    swriter.write(state)
    swriter.finish()
    stream.close()
    assert b"".join(read_stream(client, spath, options, b"job/1/task-0", readahead=1)) == state
    # a truncated copy on S3 is refused
    client.write_file(f"{spath}.cut", client.read_file(spath)[:-1])
    with pytest.raises(IntegrityError):
        list(read_stream(client, f"{spath}.cut", options, b"job/1/task-0"))
