"""The baselines of the bench, measured in the same run on the same bytes and client.

* :func:`plain_io_run`: what a user would write by hand: each task streams its records, each
  behind a 4-byte length, into one file (fsynced only when the exchange fsyncs its data files),
  then the files are read back in 8 MiB ranges and cut into records again, one by one, each
  checked with zlib.crc32 as the exchange run checks its records (the exchange with no
  format, no codec, no checksum and no commit);
* :func:`bare_codec_run`: the codec (and AES-256-GCM) alone on the same bytes, in blocks of the
  configured block size.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from exchange_store.benchmark import results
from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.benchmark.data import BenchData
from exchange_store.errors import IntegrityError
from exchange_store.filesystems.base import join

__all__ = ["bare_codec_run", "plain_io_run"]

_READ_CHUNK = 8 << 20
_LENGTH = struct.Struct("<I")


# ---------------------------------------------------------------- plain I/O


def plain_io_run(
    client: CountingFileSystemClient,
    base: str,
    data: BenchData,
    *,
    concurrency: int = 4,
    fsync: bool = False,
    progress: results.Progress = results.no_progress,
) -> results.BenchResult:
    """Write each task's length-prefixed records into one file, then read them back one by one.

    Args:
        client: The client the exchange uses (counted).
        base: Where to write.
        data: The records.
        concurrency: Tasks at once.
        fsync: Flush the files as the exchange flushes its data files.
        progress: Called with (phase, bytes).
    """
    root = join(base, f"bench-plain-{uuid.uuid4().hex[:12]}")
    tasks = len(data.tasks)
    # Both sides check every record they read with zlib.crc32 (the exchange run does too).
    expected = [(len(records), sum(zlib.crc32(r) for _, r in records)) for records in data.tasks]
    m = results.Measure()
    results.start_memory(m)
    client.reset()

    def write(t: int) -> None:
        with client.create(join(root, f"task-{t}.bin"), sync=fsync) as stream:
            for _, rec in data.tasks[t]:
                stream.write(_LENGTH.pack(len(rec)))
                stream.write(rec)
                progress("plain I/O write", len(rec))

    def read(t: int) -> bool:
        path = join(root, f"task-{t}.bin")
        size = client.size(path)
        count = crcs = 0
        offset = 0
        tail = b""
        while offset < size:
            chunk = client.read_range(path, offset, min(_READ_CHUNK, size - offset))
            if not chunk:
                raise IntegrityError(f"{path}: short read at {offset} of {size}")
            offset += len(chunk)
            buf = tail + chunk if tail else chunk
            pos, end = 0, len(buf)
            while pos + 4 <= end:
                (n,) = _LENGTH.unpack_from(buf, pos)
                if pos + 4 + n > end:
                    break
                record = buf[pos + 4 : pos + 4 + n]  # one record, copied out
                count += 1
                crcs += zlib.crc32(record)
                pos += 4 + n
            tail = buf[pos:]
            progress("plain I/O read", len(chunk))
        return (count, crcs) == expected[t] and not tail

    try:
        t0 = time.perf_counter()
        results.parallel(write, tasks, concurrency)
        m.write_seconds = time.perf_counter() - t0
        calls = client.snapshot()
        m.write_requests = client.requests
        m.stream_writes = calls.get("stream_write", 0)
        files = list(client.walk(root))
        m.files = len(files)
        m.stored = sum(f.size for f in files)
        client.reset()
        t0 = time.perf_counter()
        oks = results.parallel(read, tasks, concurrency)
        m.read_seconds = time.perf_counter() - t0
        m.read_requests = client.requests
        calls = client.snapshot()
        m.read_gets = calls.get("read_range", 0) + calls.get("read_file", 0)
        m.read_bytes = client.bytes_read
        m.verified = all(oks) and m.stored == data.total_bytes + 4 * sum(n for n, _ in expected)
    finally:
        client.delete_recursive(root)
    return results.result("plain I/O", "plain-io", "NONE", False, data, m, tasks)


# ---------------------------------------------------------------- bare codec


def _blocks(data: BenchData, block_size: int) -> Iterable[bytes]:
    buf: list[bytes] = []
    n = 0
    for records in data.tasks:
        for _, rec in records:
            buf.append(rec)
            n += len(rec)
            if n >= block_size:
                yield b"".join(buf)
                buf, n = [], 0
    if buf:
        yield b"".join(buf)


def bare_codec_run(
    codec_name: str,
    encryption: bool,
    data: BenchData,
    *,
    block_size: int = 1 << 20,
    threads: int = 2,
    tasks: int = 1,
    progress: results.Progress = results.no_progress,
) -> results.BenchResult:
    """The codec (and AES-256-GCM) alone on the same bytes, block by block, on ``threads``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from exchange_store.codecs.registry import get_codec

    codec = get_codec(codec_name)
    aead = AESGCM(os.urandom(32)) if encryption else None
    aad = b"bench"
    m = results.Measure()
    results.start_memory(m)

    def encode(item: tuple[int, bytes]) -> tuple[int, bytes, int]:
        i, block = item
        out = codec.compress(block)
        if aead is not None:
            out = aead.encrypt(i.to_bytes(12, "big"), out, aad)
        progress(f"bare {codec_name} encode", len(block))
        return i, out, len(block)

    def decode(item: tuple[int, bytes, int]) -> int:
        i, stored, raw = item
        payload = stored
        if aead is not None:
            payload = aead.decrypt(i.to_bytes(12, "big"), payload, aad)
        out = codec.decompress(payload, raw)
        progress(f"bare {codec_name} decode", raw)
        return zlib.crc32(out) if len(out) == raw else -1

    with ThreadPoolExecutor(max(1, threads)) as pool:
        t0 = time.perf_counter()
        encoded = list(pool.map(encode, enumerate(_blocks(data, block_size))))
        m.write_seconds = time.perf_counter() - t0
        m.stored = sum(len(e[1]) for e in encoded)
        t0 = time.perf_counter()
        crcs = list(pool.map(decode, encoded))
        m.read_seconds = time.perf_counter() - t0
    expected = [zlib.crc32(b) for b in _blocks(data, block_size)]
    m.verified = crcs == expected
    name = f"bare {codec_name}" + ("+AES" if encryption else "")
    return results.result(name, "bare-codec", codec_name, encryption, data, m, tasks)
