"""Deterministic, semi-compressible benchmark data: lineitem-like text rows.

Rows look like TPC-H ``lineitem`` (keys, prices, flags, dates, a short comment), so the codecs
see realistic redundancy (LZ4 compresses them about 2x, ZSTD more). The same ``seed`` gives the
same bytes on every machine and in every run, which lets the baselines use exactly the bytes
the exchange moved.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

__all__ = [
    "BenchData",
    "generate",
    "lineitem_rows",
    "record_pool",
    "records_checksum",
    "text_pages",
]

_MB = 1 << 20

_FLAGS = ("A", "N", "R")
_STATUS = ("F", "O")
_INSTRUCT = ("DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN")
_MODES = ("AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK")
_WORDS = (
    "furiously",
    "quickly",
    "carefully",
    "slyly",
    "blithely",
    "express",
    "regular",
    "special",
    "pending",
    "final",
    "ironic",
    "bold",
    "even",
    "silent",
    "unusual",
    "deposits",
    "packages",
    "requests",
    "accounts",
    "instructions",
    "foxes",
    "theodolites",
    "pinto",
    "beans",
    "dependencies",
    "courts",
    "ideas",
    "platelets",
    "asymptotes",
    "excuses",
    "sauternes",
    "warhorses",
    "across",
    "about",
    "above",
    "according",
    "after",
    "against",
    "along",
    "among",
    "around",
    "haggle",
    "sleep",
    "wake",
    "nag",
    "use",
    "integrate",
    "boost",
    "detect",
    "cajole",
    "affix",
    "engage",
    "maintain",
    "print",
    "poach",
)


def _date(rng: random.Random) -> str:
    return f"199{rng.randrange(2, 9)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def lineitem_rows(count: int, seed: int) -> list[bytes]:
    """``count`` distinct lineitem-like rows, ``|``-separated, newline-terminated."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        qty = rng.randrange(1, 51)
        price = qty * rng.randrange(90_000, 200_000) / 100
        comment = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 7)))
        rows.append(
            (
                f"{i // 4 + 1}|{rng.randrange(1, 200_000)}|{rng.randrange(1, 10_000)}|"
                f"{i % 4 + 1}|{qty}|{price:.2f}|0.0{rng.randrange(0, 10)}|0.0{rng.randrange(0, 9)}|"
                f"{rng.choice(_FLAGS)}|{rng.choice(_STATUS)}|{_date(rng)}|{_date(rng)}|"
                f"{_date(rng)}|{rng.choice(_INSTRUCT)}|{rng.choice(_MODES)}|{comment}\n"
            ).encode()
        )
    return rows


def text_pages(size_bytes: int, *, page_size: int = 64 << 10, seed: int = 0) -> list[bytes]:
    """Lineitem rows grouped into pages of about ``page_size`` bytes, ``size_bytes`` in all.

    Rows are drawn from a pool of 50,000 distinct rows, so the data compresses about as well
    as real lineitem text (LZ4 about 2x, ZSTD about 3.5x) while generation stays fast.
    """
    rng = random.Random(seed)
    pool = lineitem_rows(50_000, seed)
    per_page = max(1, page_size // (sum(len(r) for r in pool[:100]) // 100))
    pages: list[bytes] = []
    total = 0
    while total < size_bytes:
        page = b"".join(rng.choices(pool, k=per_page))
        pages.append(page)
        total += len(page)
    return pages


def record_pool(seed: int, record_size: int, pool_bytes: int = 64 * _MB) -> list[bytes]:
    """Distinct records of ``record_size`` bytes cut at random offsets of lineitem text.

    About ``pool_bytes`` of records (at least 16), so a block rarely holds the same record
    twice and the compression ratio is that of the text, not of repeats.
    """
    base = b"".join(text_pages(32 * _MB, page_size=1 << 20, seed=seed))
    view = memoryview(base)
    rng = random.Random(seed)
    count = max(16, pool_bytes // max(1, record_size))
    span = max(1, len(base) - record_size)
    out = []
    for _ in range(count):
        if record_size <= len(base):
            off = rng.randrange(span)
            out.append(bytes(view[off : off + record_size]))
        else:
            out.append((base * (record_size // len(base) + 1))[:record_size])
    return out


@dataclass(frozen=True, slots=True)
class BenchData:
    """What each task writes.

    Attributes:
        tasks: Per task, its records as ``(output partition, bytes)`` in write order.
        partitions: Number of output partitions.
        total_bytes: Sum of record lengths.
        records: Number of records.
        checksum: :func:`records_checksum` of every record (order-independent).
    """

    tasks: tuple[tuple[tuple[int, bytes], ...], ...]
    partitions: int
    total_bytes: int
    records: int
    checksum: int


def records_checksum(records: list[bytes] | tuple[bytes, ...]) -> int:
    """An order-independent checksum of a multiset of records (sum of CRC-32s mod 2**64)."""
    return sum(zlib.crc32(r) for r in records) % (1 << 64)


def generate(
    total_bytes: int, tasks: int, partitions: int, *, record_size: int = 64 << 10, seed: int = 0
) -> BenchData:
    """Lineitem-like records of about ``record_size`` bytes, ``total_bytes`` in all.

    Records are dealt round-robin to ``tasks``; each goes to a random output partition.
    """
    if tasks < 1 or partitions < 1 or record_size < 1:
        raise ValueError("tasks, partitions and record size must be positive")
    rng = random.Random(seed)
    pool = lineitem_rows(min(50_000, max(1_000, total_bytes // 128)), seed)
    avg = sum(map(len, pool)) / len(pool)
    per_record = max(1, round(record_size / avg))
    per_task: list[list[tuple[int, bytes]]] = [[] for _ in range(tasks)]
    crcs = 0
    produced = 0
    n = 0
    while produced < total_bytes:
        rows = rng.choices(pool, k=per_record)
        record = b"".join(rows)
        if produced + len(record) > total_bytes:
            record = record[: total_bytes - produced]
        per_task[n % tasks].append((rng.randrange(partitions), record))
        crcs += zlib.crc32(record)
        produced += len(record)
        n += 1
    return BenchData(
        tasks=tuple(tuple(t) for t in per_task),
        partitions=partitions,
        total_bytes=produced,
        records=n,
        checksum=crcs % (1 << 64),
    )
