"""exchange-store ls and bench, run in-process through the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import pytest

from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.benchmark.data import generate
from exchange_store.benchmark.driver import BenchResult, plain_io_run
from exchange_store.cli.main import main
from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.manager import ExchangeManager
from exchange_store.filesystems.local import LocalFileSystemClient

from .test_gc import write_dead_exchange


def test_ls_shows_leases_attempts_and_sizes(
    local_etc: tuple[pathlib.Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    etc, base = local_etc
    client = LocalFileSystemClient([base])
    write_dead_exchange(client, base, "q0", "dead", expired_ago=60)
    manager = ExchangeManager.from_etc(etc)
    exchange = manager.create_exchange(ExchangeContext("q1", "e1"), 2)
    try:
        sink = exchange.add_sink(0)
        with manager.create_sink(exchange.instantiate_sink(sink, 0)) as s:
            s.add(0, b"a" * 1000)
            s.add(1, b"b" * 1000)
        exchange.sink_finished(sink, 0)
        assert main(["ls", "--etc", str(etc), "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        by_name = {f"{e['query_id']}/{e['exchange_id']}": e for e in listing["exchanges"]}
        assert set(by_name) == {"q0/dead", "q1/e1"}
        live = by_name["q1/e1"]
        assert live["state"] == "live" and live["lease"]["pid"] == os.getpid()
        [tp] = live["task_partitions"]
        [attempt] = tp["attempts"]
        assert tp["task_partition"] == 0 and attempt["attempt_id"] == 0 and attempt["committed"]
        assert attempt["size"] > 0 and live["size"] == attempt["size"]
        dead = by_name["q0/dead"]
        assert dead["state"] == "expired"
        assert [
            [(a["attempt_id"], a["committed"]) for a in tp["attempts"]]
            for tp in dead["task_partitions"]
        ] == [[(0, True)], [(3, False)]]
        assert main(["ls", "--etc", str(etc)]) == 0
        text = capsys.readouterr().out
        for needle in ("q1/e1", "live", "q0/dead", "expired", "0:committed", "3:uncommitted"):
            assert needle in text
    finally:
        exchange.close()
    assert main(["ls", "--etc", str(etc), "--json"]) == 0
    names = [e["exchange_id"] for e in json.loads(capsys.readouterr().out)["exchanges"]]
    assert names == ["dead"]


def test_bench_json_reports_every_field(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--etc",
            str(tmp_path / "no-etc"),
            "--base-dir",
            str(base),
            "--size",
            "4MB",
            "--tasks",
            "2",
            "--partitions",
            "4",
            "--record-size",
            "32kB",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out)
    assert report["config"]["size"] == 4 << 20 and report["config"]["tasks"] == 2
    rows = report["results"]
    fields = {f.name for f in dataclasses.fields(BenchResult)}
    assert len(rows) == 1 + 3 * 2 * 2
    names = {r["name"] for r in rows}
    assert {"plain I/O", "exchange LZ4+AES", "bare ZSTD", "exchange NONE"} <= names
    vs_bare = {"write_vs_bare", "read_vs_bare"}
    for row in rows:
        assert set(row) == fields
        assert all(row[f] is not None for f in fields - vs_bare), row
        # Only exchange rows have a bare codec + cipher floor of their own.
        assert all((row[f] is not None) == (row["kind"] == "exchange") for f in vs_bare), row
        assert row["verified"] and row["raw_bytes"] == 4 << 20
        assert row["write_mb_s"] > 0 and row["read_mb_s"] > 0 and row["peak_rss_mb"] > 0
    ex = next(r for r in rows if r["name"] == "exchange ZSTD")
    assert ex["compression_ratio"] > 1.5 and ex["files_per_attempt"] >= 2
    assert ex["requests_per_attempt"] > 0 and ex["attempts"] == 2
    plain = rows[0]
    assert plain["files_per_attempt"] == 1 and plain["write_vs_plain"] == 1.0
    assert list(base.rglob("*")) == [] or all(p.is_dir() for p in base.rglob("*"))


def test_plain_io_detects_wrong_bytes(tmp_path: pathlib.Path) -> None:
    """The verification can fail: a client that corrupts one byte makes verified False."""
    base = str(tmp_path / "b")

    class Corrupting(CountingFileSystemClient):
        def _read_range(self, native: str, offset: int, length: int) -> bytes:
            data = bytearray(super()._read_range(native, offset, length))
            data[0] ^= 1
            return bytes(data)

    data = generate(256 << 10, 2, 2, record_size=16 << 10, seed=3)
    row = plain_io_run(Corrupting(LocalFileSystemClient([base])), base, data)
    assert not row.verified
    assert generate(256 << 10, 2, 2, record_size=16 << 10, seed=3) == data  # deterministic


def test_bench_repeat_reports_median_rows(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "bench",
            "--base-dir",
            str(tmp_path / "b"),
            "--etc",
            str(tmp_path / "none"),
            "--size",
            "1MB",
            "--tasks",
            "2",
            "--partitions",
            "2",
            "--codecs",
            "lz4",
            "--encryption",
            "on",
            "--repeat",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for needle in ("plain I/O", "exchange LZ4+AES", "bare LZ4+AES", "write MB/s", "yes"):
        assert needle in out


@pytest.mark.s3
def test_bench_on_s3(
    tmp_path: pathlib.Path,
    s3_bucket: str,
    s3_properties: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from .conftest import write_etc

    base = f"s3://{s3_bucket}/exchange"
    etc = write_etc(
        tmp_path,
        {"exchange.base-directories": base, "exchange-filesystem-type": "exchange"},
        s3_properties,
    )
    code = main(
        [
            "bench",
            "--etc",
            str(etc),
            "--size",
            "1MB",
            "--tasks",
            "2",
            "--partitions",
            "3",
            "--codecs",
            "LZ4",
            "--encryption",
            "on",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out)
    assert report["config"]["filesystem"] == "s3"
    assert [r["name"] for r in report["results"]] == [
        "plain I/O",
        "exchange LZ4+AES",
        "bare LZ4+AES",
    ]
    assert all(r["verified"] for r in report["results"])
    assert main(["ls", "--etc", str(etc), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exchanges"] == []  # the bench cleaned up


def test_batched_progress_passes_steps_and_flushes_the_rest() -> None:
    import threading

    from exchange_store.benchmark.results import BatchedProgress

    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def progress(what: str, n: int) -> None:
        with lock:
            seen.append((what, n))

    batched = BatchedProgress(progress, step=100)

    def work() -> None:
        for _ in range(25):
            batched("write", 10)  # 250 bytes: two calls of 100 each, 50 left over
        batched("read", 7)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen.count(("write", 100)) == 6 and len(seen) == 6
    batched.flush()
    totals: dict[str, int] = {}
    for what, n in seen:
        totals[what] = totals.get(what, 0) + n
    assert totals == {"write": 750, "read": 21}
    batched.flush()  # nothing left: nothing more reported
    assert sum(n for _, n in seen) == 771


def _row(name: str, kind: str, write_s: float, read_s: float) -> BenchResult:
    from exchange_store.benchmark.results import Measure, result

    data = generate(64 << 10, 1, 1, record_size=16 << 10)
    m = Measure(write_seconds=write_s, read_seconds=read_s, stored=data.total_bytes, files=1)
    m.verified = True
    return result(name, kind, "LZ4", True, data, m, 1)


def test_bench_ratios_are_medians_of_each_passs_own_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow spell in one pass slows both sides of that pass: it must not decide a ratio."""
    from exchange_store.benchmark import driver

    # Per pass: (plain, exchange, bare) write seconds; reads take twice as long.
    passes = iter([(0.002, 0.004, 0.002), (0.008, 0.016, 0.008), (0.002, 0.004, 0.002)])

    def one_pass(*args: object) -> list[BenchResult]:
        plain, ex, bare = next(passes)
        return [
            _row("plain I/O", "plain-io", plain, 2 * plain),
            _row("exchange LZ4+AES", "exchange", ex, 2 * ex),
            _row("bare LZ4+AES", "bare-codec", bare, 2 * bare),
        ]

    monkeypatch.setattr(driver, "_one_pass", one_pass)
    config = driver.BenchConfig(size=64 << 10, codecs=("LZ4",), encryption=(True,), repeat=3)
    rows = driver.run_bench(config, LocalFileSystemClient(["/unused"]), ["/unused"], None)  # type: ignore[arg-type]
    plain, ex, bare = rows
    assert plain.write_vs_plain == 1.0 and plain.write_vs_bare is None
    # Every pass: the exchange takes twice plain's and the bare codec's time.
    assert ex.write_vs_plain == ex.read_vs_plain == ex.total_vs_plain == 0.5
    assert ex.write_vs_bare == ex.read_vs_bare == 0.5
    assert bare.write_vs_plain == 1.0 and bare.read_vs_bare is None
    assert ex.write_seconds == 0.004  # the median pass's own figures
