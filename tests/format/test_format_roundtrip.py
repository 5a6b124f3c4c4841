from __future__ import annotations

import array
import io
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from fmt_util import CTX, KEY, BytesClient, CountingLocalClient, encode, write_local
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_store.codecs import Codec, Lz4Codec, NoneCodec, ZstdCodec
from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.format import (
    FileSummary,
    FormatOptions,
    RecordFileWriter,
    RecordStreamWriter,
    read_file,
    read_partition,
    read_stream,
    read_summary,
)
from exchange_store.format.structs import HEADER_SIZE, TRAILER_SIZE

CODECS: list[Codec] = [NoneCodec(), Lz4Codec(), ZstdCodec()]
KEYS = [None, KEY]

blocks_strategy = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.lists(
            st.one_of(st.binary(max_size=300), st.binary(max_size=4).map(lambda b: b * 200)),
            max_size=8,
        ),
    ),
    max_size=12,
)


def _by_partition(blocks: Sequence[tuple[int, Sequence[bytes]]]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for partition, records in blocks:
        out.setdefault(partition, []).extend(records)
    return out


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("key", KEYS, ids=["plain", "encrypted"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=blocks_strategy,
    workers=st.sampled_from([0, 2]),
    max_coalesce=st.sampled_from([1, 200, 1 << 20]),
)
def test_round_trip(
    codec: Codec,
    key: bytes | None,
    blocks: list[tuple[int, list[bytes]]],
    workers: int,
    max_coalesce: int,
) -> None:
    options = FormatOptions(codec=codec, key=key, workers=workers, max_pending_blocks=2)
    data, summary = encode(options, blocks)
    assert summary.length == len(data)
    assert [b.index for b in summary.blocks] == list(range(len(blocks)))
    assert summary.records == sum(len(r) for _, r in blocks)
    assert FileSummary.decode(summary.encode()) == summary
    client = BytesClient(data)
    expected = _by_partition(blocks)
    # whole file, every block in order
    got = [(p, recs) for p, recs in read_file(client, "f", options, CTX, max_coalesce=max_coalesce)]
    assert got == [(p, list(r)) for p, r in blocks]
    assert read_summary(client, "f", options, CTX) == summary
    # one partition at a time, by ranged reads
    for partition, records in expected.items():
        refs = summary.partition_blocks(partition)
        assert summary.by_partition()[partition] == refs
        got_records = list(
            read_partition(
                client, "f", summary.file_id, refs, options, CTX, max_coalesce=max_coalesce
            )
        )
        assert got_records == records


@pytest.mark.parametrize("key", KEYS, ids=["plain", "encrypted"])
@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.binary(max_size=700), max_size=10), block_size=st.integers(1, 500))
def test_stream_round_trip(key: bytes | None, chunks: list[bytes], block_size: int) -> None:
    options = FormatOptions(block_size=block_size, key=key)
    buf = io.BytesIO()
    writer = RecordStreamWriter(buf, options, CTX)
    for chunk in chunks:
        writer.write(chunk)
    summary = writer.finish()
    payload = b"".join(chunks)
    out = list(read_stream(BytesClient(buf.getvalue()), "s", options, CTX))
    assert b"".join(out) == payload
    assert all(len(c) == block_size for c in out[:-1])
    assert all(0 < len(c) <= block_size for c in out)
    assert summary.records == len(out)
    assert {b.partition for b in summary.blocks} <= {0}


def test_local_client_ranged_reads_touch_only_the_partition(tmp_path: Path) -> None:
    client = CountingLocalClient([str(tmp_path)])
    path = str(tmp_path / "data-0.xsf")
    options = FormatOptions(codec=ZstdCodec(), key=KEY)
    blocks = [(i % 4, [os.urandom(100) * (i + 1)]) for i in range(40)]
    summary = write_local(client, path, options, blocks)
    assert client.size(path) == summary.length
    for partition in range(4):
        client.ranges.clear()
        refs = summary.partition_blocks(partition)
        got = list(read_partition(client, path, summary.file_id, refs, options, CTX))
        assert got == [r for p, rs in blocks if p == partition for r in rs]
        # exactly the partition's bytes, one request per block (none are neighbours); blocks
        # are read ahead on threads (a compressed file), so requests may come in any order
        assert sorted(client.ranges) == [(r.offset, r.length) for r in refs]


def test_neighbouring_blocks_are_coalesced(tmp_path: Path) -> None:
    client = CountingLocalClient([str(tmp_path)])
    path = str(tmp_path / "data-0.xsf")
    options = FormatOptions(key=KEY)
    blocks = [(0, [b"a" * 100])] * 5 + [(1, [b"b"])] + [(0, [b"c" * 10])] * 3
    summary = write_local(client, path, options, blocks)
    refs = summary.partition_blocks(0)
    list(read_partition(client, path, summary.file_id, refs, options, CTX))
    first, second = refs[:5], refs[5:]
    assert sorted(client.ranges) == [
        (first[0].offset, first[-1].end - first[0].offset),
        (second[0].offset, second[-1].end - second[0].offset),
    ]
    # a small allowed gap merges the two runs; a small max_coalesce splits them
    client.ranges.clear()
    gap = summary.partition_blocks(1)[0].length
    list(read_partition(client, path, summary.file_id, refs, options, CTX, max_gap=gap))
    assert client.ranges == [(refs[0].offset, refs[-1].end - refs[0].offset)]
    client.ranges.clear()
    list(read_partition(client, path, summary.file_id, refs, options, CTX, max_coalesce=1))
    assert sorted(client.ranges) == [(r.offset, r.length) for r in refs]


def test_whole_file_reader_reads_in_bounded_chunks() -> None:
    options = FormatOptions(codec=NoneCodec())
    blocks = [(0, [bytes(1000)]) for _ in range(50)]
    data, summary = encode(options, blocks)
    client = BytesClient(data)
    assert len(list(read_file(client, "f", options, CTX, max_coalesce=5000))) == 50
    block_reads = [
        r for r in client.ranges if r[0] >= HEADER_SIZE and r[0] < summary.blocks[-1].end
    ]
    assert max(length for _, length in block_reads) <= 5000
    assert sum(length for _, length in block_reads) == summary.blocks[-1].end - HEADER_SIZE


def test_huge_record_and_empty_records() -> None:
    big = os.urandom(1 << 16) * 257  # 16 MiB + 64 KiB, incompressible pattern
    options = FormatOptions(codec=Lz4Codec(), key=KEY, block_size=1 << 20)
    data, summary = encode(options, [(3, [b"", big, b""]), (3, []), (3, [b""])])
    refs = summary.partition_blocks(3)
    assert list(read_partition(BytesClient(data), "f", summary.file_id, refs, options, CTX)) == [
        b"",
        big,
        b"",
        b"",
    ]


def test_empty_file() -> None:
    for key in KEYS:
        options = FormatOptions(key=key)
        data, summary = encode(options, [])
        assert summary.blocks == ()
        assert len(data) == HEADER_SIZE + TRAILER_SIZE + 1
        assert list(read_file(BytesClient(data), "f", options, CTX)) == []


def test_memoryview_records_use_byte_lengths() -> None:
    ints = array.array("i", range(10))
    options = FormatOptions()
    data, _summary = encode(
        options, [(0, [memoryview(ints), bytearray(b"xy"), memoryview(b"abc")[1:]])]
    )
    out = list(read_file(BytesClient(data), "f", options, CTX))
    assert out == [(0, [ints.tobytes(), b"xy", b"bc"])]


def test_records_are_copied_at_write_block() -> None:
    options = FormatOptions(codec=ZstdCodec())
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, CTX)
    record = bytearray(b"before" * 100)
    writer.write_block(0, [record])
    record[:] = b"x" * len(record)
    writer.finish()
    assert list(read_file(BytesClient(buf.getvalue()), "f", options, CTX)) == [
        (0, [b"before" * 100])
    ]


def test_incompressible_blocks_are_stored_raw() -> None:
    options = FormatOptions(codec=ZstdCodec())
    rnd = os.urandom(5000)
    data, summary = encode(options, [(0, [rnd]), (0, [b"z" * 5000])])
    ref_raw, ref_packed = summary.blocks
    assert ref_raw.length == 36 + ref_raw.raw_size
    assert ref_packed.length < 200
    assert data[HEADER_SIZE + 12] == 0  # flags: not compressed
    assert data[ref_packed.offset + 12] & 1  # flags: compressed


def test_writer_counters_and_back_pressure() -> None:
    written: list[int] = []

    class Stream:
        def write(self, data: bytes) -> int:
            written.append(len(data))
            return len(data)

    options = FormatOptions(codec=ZstdCodec(), block_size=1000, max_pending_blocks=3)
    writer = RecordFileWriter(Stream(), options, CTX)
    assert writer.bytes_written == HEADER_SIZE == sum(written)
    peak = 0
    for i in range(30):
        writer.write_block(i % 2, [os.urandom(500), bytes(500)])
        peak = max(peak, len(writer._pending))
        assert writer.pending_bytes <= 3 * (8 + 1000)
        assert writer.bytes_written == sum(written)
        assert writer.block_count == i + 1
    assert peak <= 3
    summary = writer.finish()
    assert writer.pending_bytes == 0
    assert summary.length == sum(written) == writer.bytes_written


def test_writer_state_errors() -> None:
    options = FormatOptions()
    writer = RecordFileWriter(io.BytesIO(), options, CTX)
    writer.finish()
    with pytest.raises(InvalidArgumentError, match="finished"):
        writer.write_block(0, [b"x"])
    with pytest.raises(InvalidArgumentError, match="finished"):
        writer.finish()
    buf = io.BytesIO()
    writer = RecordFileWriter(buf, options, CTX)
    writer.write_block(0, [b"x" * 10000])
    before = buf.getvalue()
    writer.abort()
    writer.abort()
    assert buf.getvalue() == before  # abort does not touch the stream
    with pytest.raises(InvalidArgumentError, match="aborted"):
        writer.write_block(0, [b"x"])


def test_stream_failure_makes_writer_unusable() -> None:
    class Failing:
        calls = 0

        def write(self, data: bytes) -> int:
            Failing.calls += 1
            if Failing.calls > 2:
                raise OSError("disk full")
            return len(data)

    writer = RecordFileWriter(Failing(), FormatOptions(workers=0), CTX)
    with pytest.raises(OSError, match="disk full"):
        writer.write_block(0, [b"abc"])
    with pytest.raises(InvalidArgumentError, match="failed"):
        writer.write_block(0, [b"abc"])
    writer.abort()


def test_encoding_failure_surfaces() -> None:
    class Broken(ZstdCodec):
        def compress(self, data: bytes | bytearray | memoryview) -> bytes:
            raise RuntimeError("codec exploded")

    writer = RecordFileWriter(
        io.BytesIO(), FormatOptions(codec=Broken(), max_pending_blocks=1), CTX
    )
    with pytest.raises(RuntimeError, match="codec exploded"):
        writer.write_block(0, [b"a"])
        writer.write_block(0, [b"b"])
        writer.finish()


@pytest.mark.parametrize("partition", [-1, 1 << 32, True, 1.0, "0"])
def test_bad_partition(partition: object) -> None:
    writer = RecordFileWriter(io.BytesIO(), FormatOptions(), CTX)
    with pytest.raises(InvalidArgumentError, match="partition"):
        writer.write_block(partition, [b"x"])  # type: ignore[arg-type]


@pytest.mark.parametrize("records", [b"abc", "abc", ["abc"], [1], [None]])
def test_bad_records(records: object) -> None:
    writer = RecordFileWriter(io.BytesIO(), FormatOptions(), CTX)
    with pytest.raises(InvalidArgumentError, match="record"):
        writer.write_block(0, records)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key": b"short"}, "32 bytes"),
        ({"key": "k" * 32}, "32 bytes"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": 2**31}, "block_size"),
        ({"workers": -1}, "workers"),
        ({"max_pending_blocks": 0}, "max_pending_blocks"),
        ({"codec": "LZ4"}, "Codec instance"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        FormatOptions(**kwargs)  # type: ignore[arg-type]


def test_key_never_shown() -> None:
    options = FormatOptions(key=KEY)
    for text in (repr(options), str(options)):
        assert KEY.hex() not in text and repr(KEY) not in text and "key" not in text
    assert FormatOptions(key=bytearray(KEY)).key == KEY  # normalised to bytes


def test_context_must_be_bytes() -> None:
    with pytest.raises(InvalidArgumentError, match="context must be bytes"):
        RecordFileWriter(io.BytesIO(), FormatOptions(), "q1/stage-1")  # type: ignore[arg-type]
    data, summary = encode(FormatOptions(), [(0, [b"x"])])
    with pytest.raises(InvalidArgumentError, match="context must be bytes"):
        read_file(BytesClient(data), "f", FormatOptions(), "ctx")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="file_id"):
        read_partition(BytesClient(data), "f", b"short", summary.blocks, FormatOptions(), CTX)


def test_file_ids_are_unique() -> None:
    ids = {encode(FormatOptions(), [])[1].file_id for _ in range(50)}
    assert len(ids) == 50


def test_summary_helpers() -> None:
    _, summary = encode(FormatOptions(), [(p, [b"r"] * p) for p in (1, 2, 1, 3)])
    assert [b.index for b in summary.partition_blocks(1)] == [0, 2]
    assert summary.partition_blocks(9) == ()
    assert set(summary.by_partition()) == {1, 2, 3}
    assert summary.records == 1 + 2 + 1 + 3
    assert summary.raw_size == sum(b.raw_size for b in summary.blocks)


@pytest.mark.parametrize("readahead", [1, 3])
def test_readahead_returns_the_same_in_order(readahead: int) -> None:
    options = FormatOptions(key=KEY, codec=ZstdCodec())
    blocks = [(i % 3, [os.urandom(50) * (i + 1), b""]) for i in range(30)]
    data, summary = encode(options, blocks)
    client = BytesClient(data)
    got = list(read_file(client, "f", options, CTX, max_coalesce=500, readahead=readahead))
    assert got == [(p, list(r)) for p, r in blocks]
    refs = summary.partition_blocks(1)
    assert list(
        read_partition(client, "f", summary.file_id, refs, options, CTX, readahead=readahead)
    ) == [r for p, rs in blocks if p == 1 for r in rs]
    # a corrupt block far ahead still fails in order: earlier records come out first
    bad = bytearray(data)
    bad[summary.blocks[20].offset + 40] ^= 1
    out = read_file(BytesClient(bytes(bad)), "f", options, CTX, max_coalesce=1, readahead=readahead)
    seen = 0
    with pytest.raises(IntegrityError, match="block 20"):
        for _ in out:
            seen += 1
    assert seen == 20
    # abandoning the iterator early is fine
    it = read_file(client, "f", options, CTX, readahead=readahead)
    next(it)
    it.close()


@pytest.mark.parametrize("kwargs", [{"max_coalesce": 0}, {"max_gap": -1}, {"readahead": -1}])
def test_bad_read_arguments(kwargs: dict[str, int]) -> None:
    data, summary = encode(FormatOptions(), [(0, [b"x"])])
    with pytest.raises(InvalidArgumentError, match=next(iter(kwargs))):
        read_partition(
            BytesClient(data), "f", summary.file_id, summary.blocks, FormatOptions(), CTX, **kwargs
        )
