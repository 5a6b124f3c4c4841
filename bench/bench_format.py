"""Record-file format throughput vs the bare codec + cipher calls (same data, same run).

Usage: python bench/bench_format.py [--size-mb N] [--block-size BYTES] [--workers N] [--json]

Ratios are bare / format: 1.0 means the format costs nothing over the codec and cipher calls.
"""

from __future__ import annotations

import argparse
import json
import sys

from exchange_store.benchmark.format import run_format_bench

COLUMNS = [
    ("codec", "codec"),
    ("encrypted", "enc"),
    ("compression_ratio", "ratio"),
    ("write_mb_s", "write MB/s"),
    ("bare_write_mb_s", "bare MB/s"),
    ("write_ratio", "w/bare"),
    ("write_cpu_ratio", "w cpu"),
    ("write_cpu_per_wall", "cpu/wall"),
    ("read_mb_s", "read MB/s"),
    ("bare_read_mb_s", "bare MB/s"),
    ("read_ratio", "r/bare"),
    ("read_cpu_per_wall", "cpu/wall"),
    ("read_1t_ratio", "r 1 thr"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64, help="raw MiB per case (default 64)")
    parser.add_argument("--block-size", type=int, default=1 << 20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--codecs", default="NONE,LZ4,ZSTD")
    parser.add_argument(
        "--readahead", type=int, default=None, help="reader threads (default: --workers)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    results = run_format_bench(
        args.size_mb,
        codecs=[c.strip() for c in args.codecs.split(",") if c.strip()],
        block_size=args.block_size,
        workers=args.workers,
        seed=args.seed,
        repeat=args.repeat,
        readahead=args.readahead,
    )
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return 0
    widths = [max(len(title), 8) for _, title in COLUMNS]
    print("  ".join(t.rjust(w) for (_, t), w in zip(COLUMNS, widths, strict=True)))
    for row in results:
        print("  ".join(str(row[k]).rjust(w) for (k, _), w in zip(COLUMNS, widths, strict=True)))
    print(
        f"(raw {results[0]['raw_mb']} MiB per case, block {args.block_size} B, "
        f"{args.workers} workers, {results[0]['cores']} cores; w/bare, r/bare: wall-time ratios;"
        " w cpu: CPU-time ratio; r 1 thr: the reader in the calling thread alone)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
