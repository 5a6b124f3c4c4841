"""Object-store reads: GETs per partition, bytes per GET, time against plain ranged GETs.

A moto S3 server on loopback, in its own process (as a real store is another machine: its
CPU is not the client's); every request through the client waits ``--latency`` first
(object stores answer in tens of ms) and is counted. 128 MiB of 16 KiB lineitem records
through 8 map tasks, LZ4 + AES-GCM, for each case: 64 partitions read one per source, 1,000
partitions one per source, 1,000 partitions 125 per source. The baseline in the same run is
plain I/O of the same bytes: one object per map, read back in 8 MiB ranged GETs, at the same
concurrency. The exchange's write side includes get_source_handles() (the merge of small
pieces).

    .venv/bin/python bench/bench_object_store.py [--size 128MB] [--latency 10ms] [--json]

Needs the test extra (moto).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import boto3

from exchange_store.benchmark.data import generate
from exchange_store.benchmark.driver import BenchConfig, run_bench
from exchange_store.config import parse_data_size, parse_duration
from exchange_store.filesystems.registry import load_filesystem

CASES = ((64, 1), (1000, 1), (1000, 125))


def start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    """A moto S3 server in a child process on a free loopback port; (endpoint, process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}", proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def moto_bucket(bucket: str) -> tuple[dict[str, str], subprocess.Popen[bytes]]:
    """A moto server process with ``bucket`` in it: (S3 client properties, process)."""
    endpoint, proc = start_moto()
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket=bucket
    )
    props = {
        "fs.client.type": "s3",
        "s3.endpoint": endpoint,
        "s3.region": "us-east-1",
        "s3.aws-access-key": "testing",
        "s3.aws-secret-key": "testing",
        "s3.path-style-access": "true",
    }
    return props, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_data_size, default=128 << 20)
    parser.add_argument("--latency", type=parse_duration, default=0.010)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fs, server = moto_bucket("bench")
    rows = []
    try:
        client = load_filesystem(fs, ["s3://bench/x"])
        for partitions, per_source in CASES:
            config = BenchConfig(
                size=args.size,
                tasks=args.tasks,
                partitions=partitions,
                record_size=16 << 10,
                codecs=("LZ4",),
                encryption=(True,),
                concurrency=args.concurrency,
                latency=args.latency,
                partitions_per_source=per_source,
            )
            data = generate(config.size, config.tasks, partitions, record_size=16 << 10)
            plain, exchange, _bare = run_bench(config, client, ["s3://bench/x"], data)
            sources = -(-partitions // per_source)
            rows.append(
                {
                    "partitions": partitions,
                    "partitions_per_source": per_source,
                    "gets_per_partition": exchange.gets_per_partition,
                    "gets_per_source": round(exchange.read_gets / sources, 1),
                    "bytes_per_get": exchange.bytes_per_get,
                    "write_s": exchange.write_seconds,
                    "read_s": exchange.read_seconds,
                    "plain_write_s": plain.write_seconds,
                    "plain_read_s": plain.read_seconds,
                    "plain_gets": plain.read_gets,
                    "write_read_vs_plain": exchange.total_vs_plain,
                    "read_vs_plain": exchange.read_vs_plain,
                    "verified": exchange.verified and plain.verified,
                }
            )
        client.close()
    finally:
        server.kill()
        server.wait()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.size >> 20} MiB, {args.tasks} maps, LZ4+AES, {args.latency * 1000:g} ms/request")
    print("partitions  per source  GETs/part  GETs/source  bytes/GET  w+r vs plain  read vs plain")
    for r in rows:
        print(
            f"{r['partitions']:>10}  {r['partitions_per_source']:>10}  "
            f"{r['gets_per_partition']:>9}  {r['gets_per_source']:>11}  "
            f"{int(r['bytes_per_get'] or 0):>9}  {r['write_read_vs_plain']:>12}  "
            f"{r['read_vs_plain']:>13}"
        )


if __name__ == "__main__":
    main()
