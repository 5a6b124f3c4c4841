"""Which thread does the work, how much a reader holds at once, and what checks what."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fmt_util import CTX, KEY, BytesClient, encode

from exchange_store.codecs import Lz4Codec, NoneCodec, ZstdCodec
from exchange_store.errors import IntegrityError
from exchange_store.format import FormatOptions, RecordFileWriter, read_file, read_partition
from exchange_store.format import block as block_module
from exchange_store.format.structs import BLOCK_HEADER, CRC

BLOCKS = [(0, [bytes([i]) * 3000, b"tail %d" % i]) for i in range(40)]


def _names_seen(blocks: Iterator[object]) -> set[str]:
    """Names of the reader threads started while ``blocks`` was consumed."""
    before = set(threading.enumerate())
    seen: set[str] = set()
    for _ in blocks:
        seen |= {
            t.name
            for t in threading.enumerate()
            if t not in before and t.name.startswith("xs-read")
        }
    return seen


def test_threads_follow_the_codec() -> None:
    assert FormatOptions(codec=Lz4Codec(), workers=3).threads == 3
    assert FormatOptions(codec=ZstdCodec(), workers=0).threads == 0
    # AES-GCM holds the GIL and a CRC is cheaper than a hand-off: no threads without a codec
    assert FormatOptions(codec=NoneCodec(), key=KEY, workers=3).threads == 0


def test_uncompressed_files_use_the_calling_thread_only() -> None:
    options = FormatOptions(codec=NoneCodec(), key=KEY, workers=2)
    writer = RecordFileWriter(_Sink(), options, CTX)
    assert not any(t.name.startswith("xs-format") for t in threading.enumerate())
    writer.abort()
    data, _ = encode(options, BLOCKS)
    assert _names_seen(read_file(BytesClient(data), "f", options, CTX, max_coalesce=4000)) == set()


def test_compressed_files_are_decoded_ahead_on_threads_by_default() -> None:
    options = FormatOptions(codec=Lz4Codec(), key=KEY, workers=2)
    data, summary = encode(options, BLOCKS)
    client = BytesClient(data)
    assert _names_seen(read_file(client, "f", options, CTX, max_coalesce=4000)) != set()
    assert (
        _names_seen(read_file(client, "f", options, CTX, max_coalesce=4000, readahead=0)) == set()
    )
    expected = [r for _, rs in BLOCKS for r in rs]
    for readahead in (None, 0, 1, 4):
        got = read_partition(
            client, "f", summary.file_id, summary.blocks, options, CTX, readahead=readahead
        )
        assert list(got) == expected


def test_decoding_ahead_holds_a_bounded_raw_size_per_read() -> None:
    # zeros compress ~100x: without a raw bound one 8 MiB read would decode ~800 MiB at once
    options = FormatOptions(codec=ZstdCodec(), workers=2)
    blocks = [(0, [bytes(10_000)]) for _ in range(30)]
    data, summary = encode(options, blocks)
    client = BytesClient(data)
    assert sum(1 for _ in read_file(client, "f", options, CTX, max_coalesce=25_000)) == 30
    block_reads = [(o, n) for o, n in client.ranges if summary.blocks[0].offset <= o]
    block_reads = [r for r in block_reads if r[0] < summary.blocks[-1].end]
    # 25,000 raw bytes per read: two 10,000-byte blocks each, though they are tiny on disk
    assert len(block_reads) == 15


def test_one_block_at_a_time_without_readahead() -> None:
    """Records of good blocks come out before a bad block of the same read is decoded."""
    options = FormatOptions(codec=Lz4Codec(), key=KEY, workers=0)
    data, summary = encode(options, BLOCKS)
    bad = bytearray(data)
    bad[summary.blocks[7].offset + BLOCK_HEADER.size + 5] ^= 0x10
    blocks = read_file(BytesClient(bytes(bad)), "f", options, CTX)  # one 8 MiB read
    seen = 0
    with pytest.raises(IntegrityError, match="block 7"):
        for _ in blocks:
            seen += 1
    assert seen == 7


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_what_checks_each_part_of_a_block(key: bytes | None) -> None:
    options = FormatOptions(codec=NoneCodec(), key=key, workers=0)
    data, summary = encode(options, [(0, [b"x" * 200])])
    ref = summary.blocks[0]

    def read_with_flip(pos: int) -> str:
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError) as info:
            list(read_partition(BytesClient(bytes(bad)), "f", summary.file_id, [ref], options, CTX))
        return str(info.value)

    payload = ref.offset + BLOCK_HEADER.size + 10
    tag = ref.end - CRC.size - 3
    assert "checksum mismatch" in read_with_flip(ref.offset + 1)  # header: always the CRC
    assert "checksum mismatch" in read_with_flip(ref.end - 1)  # the CRC itself
    if key is None:
        assert "checksum mismatch" in read_with_flip(payload)
        assert "checksum mismatch" in read_with_flip(tag)
    else:
        # the GCM tag authenticates the payload; the CRC covers header and tag
        assert "authentication failed" in read_with_flip(payload)
        assert "checksum mismatch" in read_with_flip(tag)


class _Sink:
    def write(self, data: bytes) -> int:
        return len(data)


def test_large_uncompressed_encrypted_records_are_decrypted_one_by_one_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocks of big records are decrypted record by record; every bit is still checked."""
    calls: list[int] = []
    stream = block_module._decrypt_records

    def counting(*args: Any, **kwargs: Any) -> list[bytes]:
        calls.append(1)
        return stream(*args, **kwargs)

    monkeypatch.setattr(block_module, "_decrypt_records", counting)
    options = FormatOptions(codec=NoneCodec(), key=KEY, workers=0)
    small = [b"a" * 3000, b"", b"b" * 4500]  # 2.5 KiB a record: one call, then slices
    big = [bytes([7]) * 4100, b"y" * 5000]  # 4.5 KiB a record: record by record
    data, summary = encode(options, [(0, small), (1, big)])
    client = BytesClient(data)
    assert [r for _, r in read_file(client, "f", options, CTX)] == [small, big]
    assert len(calls) == 1
    ref = summary.blocks[1]
    for bit in range(ref.offset * 8, ref.end * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(IntegrityError, match="block 1"):
            list(read_partition(BytesClient(bytes(bad)), "f", summary.file_id, [ref], options, CTX))
    assert len(calls) > 8 * (ref.length - 60)  # the payload flips reached the GCM check
