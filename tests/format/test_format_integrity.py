"""Every corruption is detected: bit flips, truncation, moved/swapped/foreign blocks, keys."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from fmt_util import CTX, KEY, OTHER_KEY, BytesClient, encode

from exchange_store.codecs import Lz4Codec, ZstdCodec
from exchange_store.errors import IntegrityError
from exchange_store.format import (
    BlockRef,
    FileSummary,
    FormatOptions,
    UnknownFormatVersionError,
    decode_block,
    read_file,
    read_partition,
    seal,
    unseal,
)
from exchange_store.format.structs import HEADER_SIZE, TRAILER_SIZE, crc

SMALL_BLOCKS = [(0, [b"alpha", b""]), (1, [b"beta" * 4]), (0, [b"gamma"])]
PLAIN = FormatOptions(codec=Lz4Codec(), workers=0)
ENCRYPTED = FormatOptions(codec=Lz4Codec(), key=KEY, workers=0)
BOTH = pytest.mark.parametrize("options", [PLAIN, ENCRYPTED], ids=["plain", "encrypted"])


def _read_all(
    data: bytes, options: FormatOptions, context: bytes = CTX
) -> list[tuple[int, list[bytes]]]:
    return list(read_file(BytesClient(data), "f", options, context))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@BOTH
def test_every_single_bit_flip_is_detected_by_the_file_reader(options: FormatOptions) -> None:
    data, _summary = encode(options, SMALL_BLOCKS)
    assert _read_all(data, options) == [(p, r) for p, r in SMALL_BLOCKS]
    assert len(data) < 400  # keep the sweep small
    for bit in range(len(data) * 8):
        with pytest.raises(IntegrityError):
            _read_all(_flip(data, bit), options)


@BOTH
def test_every_single_bit_flip_in_a_block_is_detected_by_ranged_reads(
    options: FormatOptions,
) -> None:
    data, summary = encode(options, SMALL_BLOCKS)
    blocks_end = summary.blocks[-1].end
    for bit in range(HEADER_SIZE * 8, blocks_end * 8):
        flipped = BytesClient(_flip(data, bit))
        with pytest.raises(IntegrityError):
            for p in (0, 1):
                list(
                    read_partition(
                        flipped, "f", summary.file_id, summary.partition_blocks(p), options, CTX
                    )
                )


@BOTH
def test_truncation_at_every_length_is_detected(options: FormatOptions) -> None:
    data, summary = encode(options, SMALL_BLOCKS)
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            _read_all(data[:n], options)
        # ranged reads of blocks past the cut fail too (short read)
        cut = [r for r in summary.blocks if r.end > n]
        if cut:
            with pytest.raises(IntegrityError):
                list(read_partition(BytesClient(data[:n]), "f", summary.file_id, cut, options, CTX))


@BOTH
def test_appended_bytes_are_detected(options: FormatOptions) -> None:
    data, _ = encode(options, SMALL_BLOCKS)
    for extra in (b"\0", b"garbage", data[-TRAILER_SIZE:]):
        with pytest.raises(IntegrityError):
            _read_all(data + extra, options)


def test_wrong_key_no_key_and_downgrade() -> None:
    data, summary = encode(ENCRYPTED, SMALL_BLOCKS)
    with pytest.raises(IntegrityError, match="authentication failed"):
        _read_all(data, dataclasses.replace(ENCRYPTED, key=OTHER_KEY))
    with pytest.raises(IntegrityError, match="encrypted but no key"):
        _read_all(data, PLAIN)
    with pytest.raises(IntegrityError, match="authentication failed"):
        list(
            read_partition(
                BytesClient(data),
                "f",
                summary.file_id,
                summary.blocks,
                dataclasses.replace(ENCRYPTED, key=OTHER_KEY),
                CTX,
            )
        )
    with pytest.raises(IntegrityError, match="encrypted but no key"):
        list(read_partition(BytesClient(data), "f", summary.file_id, summary.blocks, PLAIN, CTX))
    plain, psummary = encode(PLAIN, SMALL_BLOCKS)
    with pytest.raises(IntegrityError, match="not encrypted but a key"):
        _read_all(plain, ENCRYPTED)
    with pytest.raises(IntegrityError, match="not encrypted but a key"):
        list(
            read_partition(
                BytesClient(plain), "f", psummary.file_id, psummary.blocks, ENCRYPTED, CTX
            )
        )


@BOTH
def test_wrong_context_is_detected(options: FormatOptions) -> None:
    data, summary = encode(options, SMALL_BLOCKS)
    for other in (b"q1/stage-1/tp3/a1/f2", b"", CTX + b"\0"):
        with pytest.raises(IntegrityError):
            _read_all(data, options, other)
        with pytest.raises(IntegrityError):
            list(
                read_partition(
                    BytesClient(data), "f", summary.file_id, summary.blocks[:1], options, other
                )
            )


@BOTH
def test_swapped_blocks_are_detected(options: FormatOptions) -> None:
    blocks = [(0, [b"A" * 10]), (0, [b"B" * 10]), (0, [b"C" * 10])]
    data, summary = encode(options, blocks)
    a, b, _ = summary.blocks
    assert a.length == b.length
    swapped = data[: a.offset] + data[b.offset : b.end] + data[a.offset : a.end] + data[b.end :]
    with pytest.raises(IntegrityError):
        _read_all(swapped, options)
    with pytest.raises(IntegrityError):
        list(
            read_partition(BytesClient(swapped), "f", summary.file_id, summary.blocks, options, CTX)
        )


@BOTH
def test_replayed_or_misplaced_block_refs_are_detected(options: FormatOptions) -> None:
    blocks = [(0, [b"A" * 10]), (0, [b"A" * 10])]
    data, summary = encode(options, blocks)
    a, b = summary.blocks
    client = BytesClient(data)
    # a ref claiming block 1 lives where block 0 is (a replay of block 0)
    replay = dataclasses.replace(b, offset=a.offset)
    with pytest.raises(IntegrityError):
        list(read_partition(client, "f", summary.file_id, [a, replay], options, CTX))
    # a ref naming another partition, record count or size
    for change in (
        {"partition": 5},
        {"records": 2},
        {"raw_size": a.raw_size + 1},
        {"length": a.length - 1},
    ):
        with pytest.raises(IntegrityError):
            list(
                read_partition(
                    client, "f", summary.file_id, [dataclasses.replace(a, **change)], options, CTX
                )
            )


@BOTH
def test_block_of_another_file_is_detected(options: FormatOptions) -> None:
    blocks = [(0, [b"same"]), (1, [b"same"])]
    first, s1 = encode(options, blocks)
    second, s2 = encode(options, blocks)
    ref = s1.blocks[1]
    assert s2.blocks[1] == ref  # same place, same size: only the file id differs
    mixed = first[: ref.offset] + second[ref.offset : ref.end] + first[ref.end :]
    with pytest.raises(IntegrityError):
        _read_all(mixed, options)
    with pytest.raises(IntegrityError):
        list(read_partition(BytesClient(mixed), "f", s1.file_id, [ref], options, CTX))
    # and the right bytes under another file's id
    with pytest.raises(IntegrityError):
        list(read_partition(BytesClient(first), "f", s2.file_id, [ref], options, CTX))


def test_decode_block_checks_everything() -> None:
    data, summary = encode(ENCRYPTED, SMALL_BLOCKS)
    ref = summary.blocks[1]
    raw = data[ref.offset : ref.end]
    assert decode_block(raw, ref, summary.file_id, ENCRYPTED, CTX) == [b"beta" * 4]
    assert decode_block(memoryview(bytearray(raw)), ref, summary.file_id, ENCRYPTED, CTX) == [
        b"beta" * 4
    ]
    with pytest.raises(IntegrityError, match=r"where.xsf: block 1"):
        decode_block(raw[:-1], ref, summary.file_id, ENCRYPTED, CTX, where="where.xsf")
    with pytest.raises(IntegrityError):
        decode_block(raw, dataclasses.replace(ref, index=2), summary.file_id, ENCRYPTED, CTX)


def _rewrite_version(data: bytes, version: int) -> bytes:
    """Set the version in header and trailer, with valid CRCs (an unencrypted file)."""
    out = bytearray(data)
    out[4] = version
    out[HEADER_SIZE - 4 : HEADER_SIZE] = struct.pack("<I", crc(bytes(out[: HEADER_SIZE - 4])))
    t = len(out) - TRAILER_SIZE
    out[t + 20] = version
    body_len = struct.unpack_from("<Q", out, t)[0]
    body = bytes(out[t - body_len : t])
    # the footer CRC is seeded with file id and context, then header, trailer head, body
    file_id = bytes(out[8:24])
    value = crc(
        file_id,
        struct.pack("<I", len(CTX)),
        CTX,
        bytes(out[:HEADER_SIZE]),
        bytes(out[t : t + 24]),
        body,
    )
    out[t + 24 : t + 28] = struct.pack("<I", value)
    return bytes(out)


def test_unknown_version_is_refused_clearly() -> None:
    data, _ = encode(PLAIN, SMALL_BLOCKS)
    assert _read_all(_rewrite_version(data, 1), PLAIN)  # the helper itself is right
    with pytest.raises(UnknownFormatVersionError, match="format version 2; this reader knows 1"):
        _read_all(_rewrite_version(data, 2), PLAIN)
    assert issubclass(UnknownFormatVersionError, IntegrityError)


def test_not_a_record_file() -> None:
    with pytest.raises(IntegrityError, match="too short"):
        _read_all(b"hello", PLAIN)
    with pytest.raises(IntegrityError, match="no record-file trailer"):
        _read_all(b"x" * 500, PLAIN)


# ---------------------------------------------------------------- file summary


def test_summary_every_bit_flip_and_truncation() -> None:
    _, summary = encode(PLAIN, SMALL_BLOCKS)
    blob = summary.encode()
    assert FileSummary.decode(blob) == summary
    assert FileSummary.decode(bytearray(blob)) == summary
    for bit in range(len(blob) * 8):
        with pytest.raises(IntegrityError):
            FileSummary.decode(_flip(blob, bit))
    for n in range(len(blob)):
        with pytest.raises(IntegrityError):
            FileSummary.decode(blob[:n])


def test_summary_unknown_version() -> None:
    _, summary = encode(PLAIN, SMALL_BLOCKS)
    blob = bytearray(summary.encode())
    blob[4] = 9
    blob[-4:] = struct.pack("<I", crc(bytes(blob[:-4])))
    with pytest.raises(IntegrityError, match="unknown version 9"):
        FileSummary.decode(bytes(blob))


def test_summary_is_compact() -> None:
    blocks = [(p % 100, [b"x" * 50]) for p in range(1000)]
    _, summary = encode(PLAIN, blocks)
    assert len(summary.encode()) < 12 * len(summary.blocks)
    assert FileSummary.decode(summary.encode()).blocks == summary.blocks


def test_block_ref_end() -> None:
    assert BlockRef(0, 0, 10, 5, 1, 1).end == 15


# ---------------------------------------------------------------- seal


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_seal_round_trip_and_every_change(key: bytes | None) -> None:
    payload = b'{"files": ["data-0.xsf"], "n": 3}'
    blob = seal(payload, key, CTX)
    assert unseal(blob, key, CTX) == payload
    assert unseal(bytearray(blob), key, CTX) == payload
    if key is not None:
        assert payload not in blob
        assert seal(payload, key, CTX) != blob  # fresh salt each time
    for bit in range(len(blob) * 8):
        with pytest.raises(IntegrityError):
            unseal(_flip(blob, bit), key, CTX)
    for n in range(len(blob)):
        with pytest.raises(IntegrityError):
            unseal(blob[:n], key, CTX)
    with pytest.raises(IntegrityError):
        unseal(blob + b"\0", key, CTX)
    with pytest.raises(IntegrityError):
        unseal(blob, key, CTX + b"x")


def test_seal_keys() -> None:
    blob = seal(b"x", KEY, CTX)
    with pytest.raises(IntegrityError, match="authentication failed"):
        unseal(blob, OTHER_KEY, CTX)
    with pytest.raises(IntegrityError, match="encrypted but no key"):
        unseal(blob, None, CTX)
    with pytest.raises(IntegrityError, match="not encrypted but a key"):
        unseal(seal(b"x", None, CTX), KEY, CTX)
    assert unseal(seal(b"", KEY, CTX), KEY, CTX) == b""
    assert unseal(seal(b"", None, CTX), None, CTX) == b""


def test_seal_unknown_version() -> None:
    blob = bytearray(seal(b"x", None, CTX))
    blob[4] = 7
    blob[-4:] = struct.pack("<I", crc(struct.pack("<I", len(CTX)), CTX, bytes(blob[:-4])))
    with pytest.raises(UnknownFormatVersionError, match="version 7"):
        unseal(bytes(blob), None, CTX)


def test_zstd_encrypted_flip_sweep_on_payload() -> None:
    options = FormatOptions(codec=ZstdCodec(), key=KEY, workers=0)
    data, summary = encode(options, [(0, [b"zzzz" * 50])])
    ref = summary.blocks[0]
    for bit in range(ref.offset * 8, ref.end * 8):
        with pytest.raises(IntegrityError):
            decode_block(_flip(data, bit)[ref.offset : ref.end], ref, summary.file_id, options, CTX)
