"""Exchange figures: throughput vs plain file I/O, compression, sink memory vs partitions.

Every configuration runs ``--repeat`` rounds that alternate the plain-I/O baseline (one
fsynced file per task, read back in 1 MiB chunks) and the exchange on the same records; each
phase keeps its best time. Reads are measured warm (page cache) and, as root, cold (after
dropping the page cache). Ratios are exchange / plain (higher is better, 1.0 = parity).

Usage: python bench/bench_exchange.py [--size-mb 1024] [--partitions 64] [--tasks 8]
       [--record-sizes 65536,1048576,16384] [--configs NONE:off,LZ4:on,ZSTD:on]
       [--repeat 3] [--no-cold] [--memory-size-mb 64] [--no-memory] [--base-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from exchange_store.benchmark.exchange import run_exchange_bench, run_memory_bench


def _size(text: str) -> int:
    text = text.strip().upper()
    for suffix, mult in (("KIB", 1 << 10), ("MIB", 1 << 20), ("K", 1 << 10), ("M", 1 << 20)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * mult
    return int(text)


def _configs(text: str) -> list[tuple[str, bool]]:
    out = []
    for item in text.split(","):
        codec, _, enc = item.strip().partition(":")
        out.append((codec.upper(), enc.lower() in ("on", "true", "1", "yes")))
    return out


def _fmt(value: Any, width: int, digits: int = 1) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:{width}.{digits}f}"
    return str(value).rjust(width)


def _human(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def print_throughput(rows: list[dict[str, Any]]) -> None:
    """The figures table: MB/s and exchange/plain ratios per codec, encryption, record size."""
    head = (
        f"{'codec':5} {'enc':3} {'record':>7} {'MiB':>5} | {'write':>6} {'plain':>6} {'ratio':>5}"
        f" | {'rd warm':>7} {'plain':>6} {'ratio':>5} | {'rd cold':>7} {'plain':>6} {'ratio':>5}"
        f" | {'w+r ratio':>9} | {'compr':>5} {'cpu/w':>5} {'files':>5} {'MiB/attempt':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['codec']:5} {'on' if r['encryption'] else 'off':3} {_human(r['record_size']):>7}"
            f" {r['size_mb']:5.0f} | {_fmt(r['write_mb_s'], 6, 0)}"
            f" {_fmt(r['plain_write_mb_s'], 6, 0)}"
            f" {_fmt(r['write_ratio'], 5, 2)} | {_fmt(r['read_mb_s'], 7, 0)}"
            f" {_fmt(r['plain_read_mb_s'], 6, 0)} {_fmt(r['read_ratio'], 5, 2)}"
            f" | {_fmt(r['read_cold_mb_s'], 7, 0)} {_fmt(r['plain_read_cold_mb_s'], 6, 0)}"
            f" {_fmt(r['read_cold_ratio'], 5, 2)} | {_fmt(r['roundtrip_ratio'], 9, 2)}"
            f" | {_fmt(r['compression_ratio'], 5, 2)} {_fmt(r['write_cpu_per_wall'], 5, 2)}"
            f" {r['files_per_attempt']:5d} {r['stored_bytes_per_attempt'] / (1 << 20):11.1f}"
        )
    print(
        "MB/s are MiB/s of raw record bytes; ratio = exchange / plain (best of the repeats);"
        " w+r = write+commit then warm read; cpu/w = process CPU / wall while writing;"
        " files = data files + manifest per attempt."
    )


def print_memory(rows: list[dict[str, Any]]) -> None:
    """Peak sink memory per output-partition count."""
    print(
        f"{'partitions':>10} {'MiB':>5} {'tracemalloc peak MiB':>21} {'sink peak MiB':>14} "
        f"{'data files':>10} {'blocks':>8}"
    )
    for m in rows:
        print(
            f"{m['partitions']:10d} {m['size_mb']:5d} {m['tracemalloc_peak_mb']:21.1f} "
            f"{m['sink_peak_memory_usage_mb']:14.1f} {m['data_files']:10d} {m['blocks']:8d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--record-sizes", default="64K,1M,16K")
    parser.add_argument("--configs", default="NONE:off,LZ4:on,ZSTD:on")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip cold (page cache dropped)")
    parser.add_argument("--memory-size-mb", type=int, default=64)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--base-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    throughput: list[dict[str, Any]] = []
    for record_size in (_size(s) for s in args.record_sizes.split(",") if s.strip()):
        rows = run_exchange_bench(
            args.size_mb,
            partitions=args.partitions,
            tasks=args.tasks,
            record_size=record_size,
            configs=_configs(args.configs),
            base_dir=args.base_dir,
            repeat=args.repeat,
            cold=not args.no_cold,
        )
        throughput.extend(rows)
        if not args.json:
            print_throughput(rows)
            print(flush=True)
    memory = (
        []
        if args.no_memory
        else run_memory_bench(size_mb=args.memory_size_mb, base_dir=args.base_dir)
    )
    if args.json:
        print(json.dumps({"throughput": throughput, "memory": memory}, indent=2))
        return
    print("Figures (all record sizes):")
    print_throughput(throughput)
    if memory:
        print()
        print_memory(memory)


if __name__ == "__main__":
    main()
