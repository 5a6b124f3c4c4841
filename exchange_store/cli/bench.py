"""``exchange-store bench``: exchange throughput against plain I/O and bare codecs, same run."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from exchange_store.admin.render import console, duration_arg, human_size, print_json, size_arg
from exchange_store.admin.storage import exchange_storage_from_etc
from exchange_store.benchmark.data import generate
from exchange_store.benchmark.driver import BenchConfig, BenchResult, run_bench
from exchange_store.cli.etc import add_etc_argument, resolve_etc
from exchange_store.config import load_etc
from exchange_store.errors import ConfigurationError

__all__ = ["register", "run"]

_CODECS = ("NONE", "LZ4", "ZSTD")
# Keys the bench sets itself for every run.
_OWN_KEYS = frozenset(
    {
        "exchange.base-directories",
        "exchange.compression-codec",
        "exchange.compression-enabled",
        "exchange.compression-level",
        "exchange.encryption-enabled",
        "exchange.block-size",
    }
)


def _codecs(text: str) -> tuple[str, ...]:
    names = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    bad = [c for c in names if c not in _CODECS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown codec {', '.join(bad) or text!r}; allowed: {', '.join(_CODECS)}"
        )
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="measure exchange write/read throughput against plain I/O and bare codecs",
        description=(
            "Write and read --size of lineitem-like records through --tasks tasks into "
            "--partitions partitions, for each codec with and without encryption, on the "
            "configured filesystem; in the same run, the same bytes with plain streaming I/O "
            "through the same client, and the bare codec + cipher work."
        ),
    )
    add_etc_argument(p)
    p.add_argument("--base-dir", help="write here instead of exchange.base-directories")
    p.add_argument("--size", type=size_arg, default=256 << 20, help="volume (default: 256MB)")
    p.add_argument("--tasks", type=_positive, default=8, help="writing tasks (default: 8)")
    p.add_argument("--partitions", type=_positive, default=64, help="output partitions (64)")
    p.add_argument("--record-size", type=size_arg, default=64 << 10, help="record size (64kB)")
    p.add_argument("--seed", type=int, default=0, help="data generator seed (default: 0)")
    p.add_argument(
        "--codecs", type=_codecs, default=_CODECS, help="comma-separated (NONE,LZ4,ZSTD)"
    )
    p.add_argument(
        "--encryption",
        choices=("both", "on", "off"),
        default="both",
        help="AES-256-GCM runs (default: both)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=max(2, min(8, os.cpu_count() or 1)),
        help="tasks (and partition readers) running at once",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help="runs of everything (default: 3); rows show the median run, ratios the median of"
        " the runs' own ratios",
    )
    p.add_argument(
        "--latency",
        type=duration_arg,
        default=0.0,
        help="added to every storage request, as an object store's round trip (e.g. 10ms)",
    )
    p.add_argument(
        "--partitions-per-source",
        type=_positive,
        default=1,
        help="neighbouring partitions each reading source takes (default: 1)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _extra_properties(etc_dir: str) -> dict[str, str]:
    try:
        etc = load_etc(etc_dir)
    except ConfigurationError:
        return {}
    pf = etc.exchange_manager
    if pf is None:
        return {}
    return {k: v for k, v in pf.values.items() if k not in _OWN_KEYS}


def run(args: argparse.Namespace) -> int:
    """Run the bench; 0 when every run read back exactly what it wrote."""
    if args.base_dir is None or args.etc is None:  # --base-dir needs no etc directory
        args.etc = resolve_etc(args.etc, quiet=args.base_dir is not None)
    storage = exchange_storage_from_etc(args.etc, args.base_dir)
    extra = _extra_properties(args.etc)
    if storage is None:
        raise ConfigurationError(
            f"{args.etc}/exchange-manager.properties: not found; give --base-dir or --etc"
        )
    encryption = {"both": (False, True), "on": (True,), "off": (False,)}[args.encryption]
    config = BenchConfig(
        size=args.size,
        tasks=args.tasks,
        partitions=args.partitions,
        record_size=args.record_size,
        seed=args.seed,
        codecs=args.codecs,
        encryption=encryption,
        concurrency=args.concurrency,
        repeat=args.repeat,
        latency=args.latency,
        partitions_per_source=args.partitions_per_source,
    )
    t0 = time.perf_counter()
    data = generate(
        config.size,
        config.tasks,
        config.partitions,
        record_size=config.record_size,
        seed=config.seed,
    )
    generated = time.perf_counter() - t0
    runs = (1 + 2 * len(config.codecs) * len(config.encryption)) * config.repeat
    err = console(stderr=True)
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("bench", total=2 * data.total_bytes * runs)

        def progress(what: str, advance: int) -> None:
            bar.update(task, advance=advance, description=what)

        try:
            rows = run_bench(
                config,
                storage.client,
                storage.roots,
                data,
                exchange_properties=extra,
                progress=progress,
            )
        finally:
            storage.client.close()
    if args.json:
        print_json(
            {
                "config": {
                    "size": config.size,
                    "tasks": config.tasks,
                    "partitions": config.partitions,
                    "record_size": config.record_size,
                    "seed": config.seed,
                    "codecs": list(config.codecs),
                    "encryption": list(config.encryption),
                    "concurrency": config.concurrency,
                    "block_size": config.block_size,
                    "repeat": config.repeat,
                    "records": data.records,
                    "base_directories": list(storage.roots),
                    "filesystem": storage.client.scheme,
                },
                "environment": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpu_count": os.cpu_count(),
                    "generate_seconds": round(generated, 3),
                },
                "results": [r.to_dict() for r in rows],
            }
        )
    else:
        _print_table(rows, config, storage.roots)
    return 0 if all(r.verified for r in rows) else 1


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_table(rows: list[BenchResult], config: BenchConfig, roots: tuple[str, ...]) -> None:
    out = console()
    title = (
        f"bench: {human_size(config.size)}, {config.tasks} tasks, {config.partitions} partitions, "
        f"on {', '.join(roots)}"
    )
    table = Table(title=title, title_justify="left")
    for col in (
        "run",
        "write MB/s",
        "read MB/s",
        "w/plain",
        "r/plain",
        "w+r/plain",
        "w/bare",
        "r/bare",
        "GETs/part",
        "B/GET",
        "ratio",
        "files/att",
        "req/att",
        "peak RSS",
        "ok",
    ):
        if col == "run":  # the row names stay whole; numbers give way on narrow terminals
            table.add_column(col, no_wrap=True, min_width=max(len(r.name) for r in rows))
        else:
            table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.name,
            f"{r.write_mb_s:.0f}",
            f"{r.read_mb_s:.0f}",
            _fmt(r.write_vs_plain),
            _fmt(r.read_vs_plain),
            _fmt(r.total_vs_plain),
            _fmt(r.write_vs_bare),
            _fmt(r.read_vs_bare),
            _fmt(r.gets_per_partition, 1),
            human_size(int(r.bytes_per_get)) if r.bytes_per_get else "-",
            _fmt(r.compression_ratio),
            _fmt(r.files_per_attempt, 1) if r.kind != "bare-codec" else "-",
            _fmt(r.requests_per_attempt, 1) if r.kind != "bare-codec" else "-",
            f"{r.peak_rss_mb:.0f}MB",
            "yes" if r.verified else "NO",
        )
    out.print(table)
