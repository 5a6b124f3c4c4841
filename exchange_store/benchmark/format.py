"""Throughput of the record-file writer and reader against the bare codec + cipher calls.

Both sides work on the same generated, semi-compressible data (lineitem-like rows in pages)
in the same run, in memory (no disk), so the ratio shows what the format itself costs:

* bare write: frame each block's records (one join, as any writer must), compress, encrypt.
* format write: :class:`RecordFileWriter` to a counting null stream, ``workers`` threads.
* bare read: copy each stored block, decrypt, decompress.
* format read: :func:`read_file` over an in-memory ranged reader (footer, CRCs, records).

The writer's CPU time / wall time shows whether encoding uses more than one core.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange_store._malloc import raise_malloc_thresholds
from exchange_store.benchmark.data import text_pages
from exchange_store.benchmark.harness import timed
from exchange_store.codecs.base import Codec
from exchange_store.codecs.registry import get_codec
from exchange_store.crypto.aes import derive_cipher, nonce_for
from exchange_store.format.model import FormatOptions
from exchange_store.format.reader import read_file
from exchange_store.format.writer import RecordFileWriter, WritableStream

__all__ = ["run_format_bench"]

_MB = 1 << 20
_BARE_AAD = b"bench/stage-0/tp0/a0/f0"


def _blocks(pages: Sequence[bytes], block_size: int) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for page in pages:
        if cur and size + len(page) > block_size:
            out.append(cur)
            cur, size = [], 0
        cur.append(page)
        size += len(page)
    if cur:
        out.append(cur)
    return out


class _CountingStream:
    """A stream that keeps nothing: the measured writes pay for their output, then free it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


class _KeepingStream:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


class _MemoryReader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def size(self, path: str) -> int:
        return len(self.data)


def _bare_encode(block: list[bytes], i: int, codec: Codec, cipher: AESGCM | None) -> bytes:
    packed = b"".join(block)
    if not codec.is_identity:
        packed = codec.compress(packed)
    if cipher is not None:
        packed = cipher.encrypt(nonce_for(i), packed, _BARE_AAD)
    return packed


def _bare_write(blocks: list[list[bytes]], codec: Codec, cipher: AESGCM | None) -> int:
    """Frame (one join, as any writer must), compress and encrypt each block; keep nothing."""
    return sum(len(_bare_encode(block, i, codec, cipher)) for i, block in enumerate(blocks))


def _bare_read(
    stored: list[bytes], raw_sizes: list[int], codec: Codec, cipher: AESGCM | None
) -> int:
    """Copy each stored block (as a read would), decrypt and decompress it."""
    n = 0
    for i, (packed, raw_size) in enumerate(zip(stored, raw_sizes, strict=True)):
        body = bytes(memoryview(packed))
        if cipher is not None:
            body = cipher.decrypt(nonce_for(i), body, _BARE_AAD)
        if not codec.is_identity:
            body = codec.decompress(body, raw_size)
        n += len(body)
    return n


def _format_write(
    blocks: list[list[bytes]], options: FormatOptions, context: bytes, stream: WritableStream
) -> None:
    writer = RecordFileWriter(stream, options, context)
    for block in blocks:
        writer.write_block(0, block)
    writer.finish()


def _format_read(
    reader: _MemoryReader, options: FormatOptions, context: bytes, readahead: int | None
) -> int:
    n = 0
    for _, recs in read_file(reader, "bench", options, context, readahead=readahead):
        n += sum(map(len, recs))
    return n


def run_format_bench(
    size_mb: int = 64,
    *,
    codecs: Iterable[str] = ("NONE", "LZ4", "ZSTD"),
    encryption: Iterable[bool] = (False, True),
    block_size: int = 1 << 20,
    workers: int = 2,
    seed: int = 0,
    pages: Sequence[bytes] | None = None,
    repeat: int = 3,
    readahead: int | None = None,
) -> list[dict[str, Any]]:
    """Measure the format against the bare codec + cipher for each codec x encryption.

    Args:
        size_mb: Raw data volume per case, in MiB.
        codecs: Registry names to run.
        encryption: Whether to run without and/or with AES-256-GCM.
        block_size: Block size of the format (the bare side uses the same blocks).
        workers: Encoding threads of the format writer.
        seed: Seed of the generated data.
        pages: Records to use instead of generated ones.
        repeat: Each measurement is the best of this many runs (the machine may be shared).
        readahead: Groups the format reader reads and decodes ahead on threads (None: as many
            as ``workers``, the reader's default). The single-threaded read is measured too.

    Returns:
        One dict per case with ``codec``, ``encrypted``, ``raw_mb``, ``stored_mb``,
        ``compression_ratio``, ``write_mb_s``, ``bare_write_mb_s``, ``write_ratio`` (bare
        wall time / format wall time), ``write_cpu_ratio`` (bare CPU time / format CPU time:
        the cost of the format on any number of cores), ``write_cpu_per_wall``,
        ``read_mb_s``, ``bare_read_mb_s``, ``read_ratio``, ``read_cpu_per_wall``,
        ``read_1t_mb_s`` and ``read_1t_ratio`` (the reader on the calling thread alone),
        ``workers``, ``readahead``, ``block_size``, ``cores``.
    """
    raise_malloc_thresholds()  # as the exchange does: both sides then reuse freed memory
    data = list(pages) if pages is not None else text_pages(size_mb * _MB, seed=seed)
    raw = sum(len(p) for p in data)
    blocks = _blocks(data, block_size)
    raw_sizes = [sum(map(len, block)) for block in blocks]
    context = b"bench/stage-0/tp0/a0/f0"
    mb = raw / _MB
    results: list[dict[str, Any]] = []
    for name in codecs:
        codec = get_codec(name)
        for encrypted in encryption:
            key = os.urandom(32) if encrypted else None
            cipher = derive_cipher(key, os.urandom(16), b"bench") if key is not None else None
            options = FormatOptions(codec=codec, block_size=block_size, key=key, workers=workers)
            bare_w = timed(partial(_bare_write, blocks, codec, cipher), repeat)
            fmt_w = timed(
                partial(_format_write, blocks, options, context, _CountingStream()), repeat
            )
            stored = [_bare_encode(block, i, codec, cipher) for i, block in enumerate(blocks)]
            bare_r = timed(partial(_bare_read, stored, raw_sizes, codec, cipher), repeat)
            del stored
            keeping = _KeepingStream()
            _format_write(blocks, options, context, keeping)
            reader = _MemoryReader(b"".join(keeping.parts))
            del keeping
            got = _format_read(reader, options, context, readahead)
            if got != raw:
                raise AssertionError(f"format bench read {got} bytes, wrote {raw}")
            fmt_r = timed(partial(_format_read, reader, options, context, readahead), repeat)
            one_r = timed(partial(_format_read, reader, options, context, 0), repeat)
            results.append(
                {
                    "codec": name,
                    "encrypted": encrypted,
                    "raw_mb": round(mb, 1),
                    "stored_mb": round(len(reader.data) / _MB, 1),
                    "compression_ratio": round(raw / len(reader.data), 2),
                    "write_mb_s": round(mb / fmt_w.wall, 1),
                    "bare_write_mb_s": round(mb / bare_w.wall, 1),
                    "write_ratio": round(bare_w.wall / fmt_w.wall, 2),
                    "write_cpu_ratio": round(bare_w.cpu / fmt_w.cpu, 2),
                    "write_cpu_per_wall": round(fmt_w.cpu / fmt_w.wall, 2),
                    "read_mb_s": round(mb / fmt_r.wall, 1),
                    "bare_read_mb_s": round(mb / bare_r.wall, 1),
                    "read_ratio": round(bare_r.wall / fmt_r.wall, 2),
                    "read_cpu_per_wall": round(fmt_r.cpu / fmt_r.wall, 2),
                    "read_1t_mb_s": round(mb / one_r.wall, 1),
                    "read_1t_ratio": round(bare_r.wall / one_r.wall, 2),
                    "workers": workers,
                    "readahead": workers if readahead is None else readahead,
                    "block_size": block_size,
                    "cores": os.cpu_count(),
                }
            )
            del reader
    return results
