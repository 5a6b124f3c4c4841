"""Exchange figures: throughput vs plain file I/O, compression, sink memory vs partitions.

Usage: python bench/bench_exchange.py [--size-mb 1024] [--partitions 64] [--tasks 8]
       [--memory-size-mb 64] [--base-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json

from exchange_store.exchange.bench import run_exchange_bench, run_memory_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--memory-size-mb", type=int, default=64)
    parser.add_argument("--base-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    throughput = run_exchange_bench(
        args.size_mb,
        partitions=args.partitions,
        tasks=args.tasks,
        configs=(("NONE", False), ("LZ4", True), ("ZSTD", True)),
        base_dir=args.base_dir,
    )
    memory = run_memory_bench(size_mb=args.memory_size_mb, base_dir=args.base_dir)
    if args.json:
        print(json.dumps({"throughput": throughput, "memory": memory}, indent=2))
        return
    print(
        f"{'codec':6} {'enc':5} {'MB':>7} {'write':>8} {'plain':>8} {'ratio':>6} "
        f"{'read':>8} {'plain':>8} {'ratio':>6} {'compr':>6} {'files':>5}"
    )
    for r in throughput:
        print(
            f"{r['codec']:6} {r['encryption']!s:5} {r['size_mb']:7.0f} {r['write_mb_s']:8.1f} "
            f"{r['plain_write_mb_s']:8.1f} {r['write_ratio']:6.2f} {r['read_mb_s']:8.1f} "
            f"{r['plain_read_mb_s']:8.1f} {r['read_ratio']:6.2f} {r['compression_ratio']:6.2f} "
            f"{r['files_per_attempt']:5d}"
        )
    print()
    print(
        f"{'partitions':>10} {'MB':>5} {'tracemalloc peak MB':>20} {'sink peak MB':>13} "
        f"{'data files':>10} {'blocks':>8}"
    )
    for m in memory:
        print(
            f"{m['partitions']:10d} {m['size_mb']:5d} {m['tracemalloc_peak_mb']:20.1f} "
            f"{m['sink_peak_memory_usage_mb']:13.1f} {m['data_files']:10d} {m['blocks']:8d}"
        )


if __name__ == "__main__":
    main()
