"""Coordinator costs: sink_finished with receipts on S3 behind latency, and handle size.

1. 1,000 sinks commit to a moto S3 server on loopback (its own process); the coordinator's
   client adds 10 ms to every request and counts them; 1,000 ``sink_finished`` calls with the
   sinks' receipts, then (same setup) without them.
2. 1,000 sinks x 1,000 partitions on the local filesystem: the pickled size of
   ``get_source_handles()`` and bytes per (file, partition).

    .venv/bin/python bench/bench_coordinator.py [--sinks 1000] [--partitions 1000] [--json]

Needs the test extra (moto) for part 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from bench_object_store import moto_bucket
from rich.progress import Progress

from exchange_store.benchmark.coordinator import measure_handle_size, measure_sink_finished
from exchange_store.exchange import ExchangeManager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sinks", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.010)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fs, server = moto_bucket("bench")
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("sinks on S3", total=2 * args.sinks)
            with ExchangeManager.from_properties(
                {"exchange.base-directories": "s3://bench/x", "exchange-filesystem-type": "s3"},
                filesystems={"s3": fs},
            ) as manager:
                cost = measure_sink_finished(
                    manager,
                    sinks=args.sinks,
                    latency=args.latency,
                    progress=lambda n: bar.advance(task, n),
                )
            task = bar.add_task("sinks x partitions, local", total=args.sinks)
            with (
                tempfile.TemporaryDirectory(prefix="bench-handles-") as tmp,
                ExchangeManager.from_properties({"exchange.base-directories": tmp}) as local,
            ):
                size = measure_handle_size(
                    local,
                    sinks=args.sinks,
                    partitions=args.partitions,
                    progress=lambda n: bar.advance(task, n),
                )
    finally:
        server.kill()
        server.wait()
    out = {
        "sink_finished": {
            "sinks": cost.sinks,
            "latency_ms": cost.latency * 1000,
            "with_receipts_s": round(cost.with_receipts, 4),
            "with_receipts_requests": cost.with_receipts_requests,
            "without_receipts_s": round(cost.without_receipts, 3),
            "without_receipts_requests": cost.without_receipts_requests,
        },
        "handles": {
            "sinks": size.sinks,
            "partitions": size.partitions,
            "handles": size.handles,
            "pieces": size.pieces,
            "pickled_bytes": size.pickled_bytes,
            "bytes_per_piece": round(size.bytes_per_piece, 1),
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    sf, h = out["sink_finished"], out["handles"]
    print(
        f"{sf['sinks']} sink_finished on S3 (moto) + {sf['latency_ms']:g} ms/request: "
        f"with receipts {sf['with_receipts_s']} s ({sf['with_receipts_requests']} requests), "
        f"without {sf['without_receipts_s']} s ({sf['without_receipts_requests']} requests)"
    )
    print(
        f"get_source_handles() at {h['sinks']} sinks x {h['partitions']} partitions: "
        f"{h['handles']} handles, {h['pieces']:,} pieces, {h['pickled_bytes']:,} bytes pickled, "
        f"{h['bytes_per_piece']} bytes per (file, partition)"
    )


if __name__ == "__main__":
    main()
