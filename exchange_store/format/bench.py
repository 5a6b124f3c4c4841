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
import random
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange_store.codecs.aes import derive_cipher, nonce_for
from exchange_store.codecs.base import Codec
from exchange_store.codecs.registry import get_codec
from exchange_store.format.model import FormatOptions
from exchange_store.format.reader import read_file
from exchange_store.format.writer import RecordFileWriter

__all__ = ["make_pages", "run_format_bench"]

_MB = 1 << 20


def make_pages(size_bytes: int, *, page_size: int = 64 << 10, seed: int = 0) -> list[bytes]:
    """Lineitem-like text rows grouped into pages of about ``page_size`` bytes.

    Rows are drawn from a pool of distinct generated rows, so the data compresses about as
    well as real lineitem text (LZ4 roughly 2-3x) while generation stays fast.
    """
    rnd = random.Random(seed)
    modes = [b"TRUCK", b"MAIL", b"REG AIR", b"AIR", b"FOB", b"RAIL", b"SHIP"]
    instr = [b"DELIVER IN PERSON", b"COLLECT COD", b"NONE", b"TAKE BACK RETURN"]
    words = b"furiously regular ideas sleep carefully final deposits haggle slyly".split()
    pool = [
        b"%d|%d|%d|%d|%d|%.2f|0.0%d|0.0%d|%s|%s|1995-%02d-%02d|1995-%02d-%02d|%s|%s|%s|\n"
        % (
            rnd.randrange(6_000_000),
            rnd.randrange(200_000),
            rnd.randrange(10_000),
            rnd.randrange(1, 8),
            rnd.randrange(1, 51),
            rnd.random() * 100_000,
            rnd.randrange(10),
            rnd.randrange(9),
            rnd.choice([b"N", b"R", b"A"]),
            rnd.choice([b"O", b"F"]),
            rnd.randrange(1, 13),
            rnd.randrange(1, 29),
            rnd.randrange(1, 13),
            rnd.randrange(1, 29),
            rnd.choice(instr),
            rnd.choice(modes),
            b" ".join(rnd.choices(words, k=rnd.randrange(2, 7))),
        )
        for _ in range(50_000)
    ]
    per_page = max(1, page_size // (sum(len(r) for r in pool[:100]) // 100))
    pages: list[bytes] = []
    total = 0
    while total < size_bytes:
        page = b"".join(rnd.choices(pool, k=per_page))
        pages.append(page)
        total += len(page)
    return pages


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


class _NullStream:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        self.size += len(data)
        return len(data)


class _MemoryReader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def size(self, path: str) -> int:
        return len(self.data)


def _timed(fn: Any, repeat: int = 1) -> tuple[float, float, Any]:
    """Best wall time of ``repeat`` runs, with the CPU time of that run, and its result."""
    best: tuple[float, float, Any] | None = None
    for _ in range(max(1, repeat)):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
        del result
    assert best is not None
    return best


def _bare_write(
    blocks: list[list[bytes]], codec: Codec, cipher: AESGCM | None, context: bytes
) -> list[bytes]:
    out = []
    for i, block in enumerate(blocks):
        section = b"".join(block)
        packed = section if codec.is_identity else codec.compress(section)
        if cipher is not None:
            packed = cipher.encrypt(nonce_for(i), packed, context)
        out.append(packed)
    return out


def _bare_read(
    blocks: list[list[bytes]],
    stored: list[bytes],
    codec: Codec,
    cipher: AESGCM | None,
    context: bytes,
) -> int:
    n = 0
    for i, (block, packed) in enumerate(zip(blocks, stored, strict=True)):
        body = bytes(memoryview(packed))
        if cipher is not None:
            body = cipher.decrypt(nonce_for(i), body, context)
        if not codec.is_identity:
            body = codec.decompress(body, sum(len(r) for r in block))
        n += len(body)
    return n


def _format_write(blocks: list[list[bytes]], options: FormatOptions, context: bytes) -> _NullStream:
    stream = _NullStream()
    writer = RecordFileWriter(stream, options, context)
    for block in blocks:
        writer.write_block(0, block)
    writer.finish()
    return stream


def _format_read(
    reader: _MemoryReader, options: FormatOptions, context: bytes, readahead: int
) -> int:
    n = 0
    for _, recs in read_file(reader, "bench", options, context, readahead=readahead):
        n += sum(len(r) for r in recs)
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
    readahead: int = 0,
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
        readahead: Groups the format reader reads and decodes ahead on threads.

    Returns:
        One dict per case with ``codec``, ``encrypted``, ``raw_mb``, ``stored_mb``,
        ``compression_ratio``, ``write_mb_s``, ``bare_write_mb_s``, ``write_ratio``,
        ``write_cpu_per_wall``, ``read_mb_s``, ``bare_read_mb_s``, ``read_ratio``,
        ``read_cpu_per_wall``, ``workers``, ``block_size``, ``cores``.
    """
    data = list(pages) if pages is not None else make_pages(size_mb * _MB, seed=seed)
    raw = sum(len(p) for p in data)
    blocks = _blocks(data, block_size)
    context = b"bench/stage-0/tp0/a0/f0"
    results: list[dict[str, Any]] = []
    for name in codecs:
        codec = get_codec(name)
        for encrypted in encryption:
            key = os.urandom(32) if encrypted else None
            cipher = derive_cipher(key, os.urandom(16), b"bench") if key is not None else None
            bw_wall, _, stored = _timed(
                partial(_bare_write, blocks, codec, cipher, context), repeat
            )
            br_wall, _, _ = _timed(
                partial(_bare_read, blocks, stored, codec, cipher, context), repeat
            )
            options = FormatOptions(codec=codec, block_size=block_size, key=key, workers=workers)
            fw_wall, fw_cpu, stream = _timed(
                partial(_format_write, blocks, options, context), repeat
            )
            file_bytes = b"".join(stream.parts)
            reader = _MemoryReader(file_bytes)
            fr_wall, fr_cpu, got = _timed(
                partial(_format_read, reader, options, context, readahead), repeat
            )
            if got != raw:
                raise AssertionError(f"format bench read {got} bytes, wrote {raw}")
            mb = raw / _MB
            results.append(
                {
                    "codec": name,
                    "encrypted": encrypted,
                    "raw_mb": round(mb, 1),
                    "stored_mb": round(len(file_bytes) / _MB, 1),
                    "compression_ratio": round(raw / len(file_bytes), 2),
                    "write_mb_s": round(mb / fw_wall, 1),
                    "bare_write_mb_s": round(mb / bw_wall, 1),
                    "write_ratio": round(bw_wall / fw_wall, 2),
                    "write_cpu_per_wall": round(fw_cpu / fw_wall, 2),
                    "read_mb_s": round(mb / fr_wall, 1),
                    "bare_read_mb_s": round(mb / br_wall, 1),
                    "read_ratio": round(br_wall / fr_wall, 2),
                    "read_cpu_per_wall": round(fr_cpu / fr_wall, 2),
                    "workers": workers,
                    "readahead": readahead,
                    "block_size": block_size,
                    "cores": os.cpu_count(),
                }
            )
            del stored, file_bytes, stream, reader
    return results
