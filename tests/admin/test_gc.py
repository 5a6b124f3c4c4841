"""exchange-store gc on exchanges: real owner processes killed with SIGKILL, local and S3."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

import pytest

from exchange_store.admin.gc import GarbageCollector
from exchange_store.admin.inventory import describe_exchange, find_exchanges
from exchange_store.admin.storage import ExchangeStorage, exchange_storage_from_etc
from exchange_store.benchmark.counting import CountingFileSystemClient
from exchange_store.cli.main import main
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.filesystems.lease import LeaseRecord, read_lease
from exchange_store.filesystems.local import LocalFileSystemClient

from .conftest import write_etc


def run_gc(capsys: pytest.CaptureFixture[str], etc: pathlib.Path, *extra: str) -> dict[str, Any]:
    code = main(["gc", "--etc", str(etc), "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def files_under(client: FileSystemClient, path: str) -> list[str]:
    return sorted(f.path for f in client.walk(path))


def write_dead_exchange(
    client: FileSystemClient, base: str, query: str, exchange: str, *, expired_ago: float
) -> str:
    """An exchange whose owner died ``expired_ago`` seconds after its lease's expiry."""
    d = join(base, query, exchange)
    now = time.time()
    record = LeaseRecord("exchange q/e", "host", 1, now - 9000, now - expired_ago - 10, 10.0)
    client.write_file(join(d, "_lease"), record.encode())
    client.write_file(join(d, "ab-0", "0", "data-0.xsf"), b"x" * 1000)
    client.write_file(join(d, "ab-0", "0", "_manifest"), b"m" * 10)
    client.write_file(join(d, "cd-1", "3", "data-0.xsf"), b"y" * 500)
    return d


def age_tree(path: str, seconds: float) -> None:
    """Set the mtime of everything under a local path ``seconds`` into the past."""
    t = time.time() - seconds
    for dirpath, dirs, files in os.walk(path):
        for name in files + dirs:
            os.utime(os.path.join(dirpath, name), (t, t))
    os.utime(path, (t, t))


# ---------------------------------------------------------------- killed owners, local and S3


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> dict[str, Any]:
    if request.param == "local":
        base = str(tmp_path / "exchange")
        os.makedirs(base)
        fs = {"fs.client.type": "local"}

        def uploads() -> list[str]:
            return []

    else:
        bucket = request.getfixturevalue("s3_bucket")
        fs = dict(request.getfixturevalue("s3_properties"))
        base = f"s3://{bucket}/exchange"
        boto3 = pytest.importorskip("boto3")
        s3 = boto3.client(
            "s3", endpoint_url=request.getfixturevalue("moto_server"), region_name="us-east-1"
        )

        def uploads() -> list[str]:
            listing = s3.list_multipart_uploads(Bucket=bucket)
            return [u["Key"] for u in listing.get("Uploads", [])]

    etc = write_etc(
        tmp_path,
        {"exchange.base-directories": base, "exchange-filesystem-type": "exchange"},
        fs,
    )
    st = exchange_storage_from_etc(etc)
    assert st is not None
    yield {"etc": etc, "base": base, "fs": fs, "storage": st, "uploads": uploads}
    st.client.close()


def test_killed_owner_collected_after_expiry_and_not_before(
    storage: dict[str, Any], spawn_owner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    st: ExchangeStorage = storage["storage"]
    client = st.client
    s3 = storage["base"].startswith("s3://")
    # On S3 the crashed attempt leaves a multipart upload in flight (parts of 5MB).
    owner = spawn_owner(
        storage["base"], storage["fs"], lease_ttl="3s", in_flight_bytes=(7 << 20) if s3 else 0
    )
    exchange_dir = join(storage["base"], "q1", "e1")
    if s3:
        deadline = time.monotonic() + 30
        while not storage["uploads"]() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert storage["uploads"](), "the crashed attempt should have an upload in flight"
    before = files_under(client, exchange_dir)
    assert any(p.endswith("_manifest") for p in before)
    # Alive: gc (no grace period at all) leaves it whole, however often it runs.
    for _ in range(3):
        report = run_gc(capsys, storage["etc"], "--older-than", "0s")
        assert report["total_items"] == 0 and report["live_exchanges"] == 1
    assert files_under(client, exchange_dir) == before
    assert main(["ls", "--etc", str(storage["etc"]), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)["exchanges"]
    assert listed["state"] == "live" and listed["lease"]["pid"] == owner.proc.pid
    [tp] = listed["task_partitions"]
    assert (0, True) in [(a["attempt_id"], a["committed"]) for a in tp["attempts"]]
    if s3:  # the live owner's upload was not aborted, though --older-than is 0s
        assert storage["uploads"]()

    owner.kill()
    before_size = sum(f.size for f in client.walk(exchange_dir))  # the lease no longer changes
    lease = read_lease(client, join(exchange_dir, "_lease"))
    assert lease is not None and lease.pid == owner.proc.pid
    # Killed, lease not yet expired: still untouched.
    gc = GarbageCollector(st, older_than=0.0, clock=lambda: lease.expires_at - 0.05)
    result = gc.run()
    assert result.items == () and result.live_exchanges == 1
    if s3:
        assert storage["uploads"]()
    # Expired, but less than --older-than ago: kept.
    gc = GarbageCollector(st, older_than=600.0, clock=lambda: lease.expires_at + 300)
    # (moto dates every upload 2010-11-10, so a dead owner's upload may already go here.)
    assert [i for i in gc.run().items if i.kind == "exchange"] == []
    assert files_under(client, exchange_dir) == before
    # Expired long enough: collected, every byte.
    gc = GarbageCollector(st, older_than=600.0, clock=lambda: lease.expires_at + 601)
    result = gc.run()
    assert [i.name for i in result.items] == ["q1/e1"]
    assert result.items[0].size == before_size > 0
    assert result.items[0].deleted
    assert files_under(client, storage["base"]) == []
    if s3:
        assert storage["uploads"]() == []
    # Idempotent: a second collector (another machine) finds nothing and does not fail.
    again = GarbageCollector(st, older_than=600.0, clock=lambda: lease.expires_at + 601)
    assert again.run().items == ()


def test_cli_collects_after_real_expiry_from_every_base_directory(
    tmp_path: pathlib.Path, spawn_owner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bases = [str(tmp_path / "b1"), str(tmp_path / "b2")]
    fs = {"fs.client.type": "local"}
    etc = write_etc(
        tmp_path,
        {"exchange.base-directories": ",".join(bases), "exchange-filesystem-type": "exchange"},
        fs,
    )
    client = LocalFileSystemClient(bases)
    owner = spawn_owner(",".join(bases), fs, lease_ttl="1s")
    owner.kill()
    size = sum(f.size for b in bases for f in client.walk(b))
    leases = [read_lease(client, join(b, "q1", "e1", "_lease")) for b in bases]
    assert all(lease is not None for lease in leases)  # a copy in each base directory
    while not all(lease.expired() for lease in leases if lease is not None):
        time.sleep(0.05)
    report = run_gc(capsys, etc, "--older-than", "0s")
    assert report["total_items"] == 1
    item = report["items"][0]
    assert item["kind"] == "exchange" and item["name"] == "q1/e1" and item["deleted"]
    assert item["size"] == size > 0 and len(item["paths"]) == 2
    assert all(os.listdir(b) == [] for b in bases)  # the emptied query directories went too


# ---------------------------------------------------------------- dry run, no lease, others


def test_dry_run_deletes_nothing_then_real_run_does(
    local_etc: tuple[pathlib.Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    etc, base = local_etc
    client = LocalFileSystemClient([base])
    d = write_dead_exchange(client, base, "q9", "stage-1", expired_ago=7200)
    age_tree(d, 7200)
    before = files_under(client, base)
    report = run_gc(capsys, etc, "--dry-run")
    assert report["dry_run"] and report["total_items"] == 1
    item = report["items"][0]
    assert item["name"] == "q9/stage-1" and not item["deleted"]
    assert item["size"] == 1000 + 10 + 500 + client.size(join(d, "_lease"))
    assert item["age"] >= 7200 and "expired" in item["reason"]
    assert files_under(client, base) == before
    # The human form lists it with size and age too.
    assert main(["gc", "--etc", str(etc), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would delete" in text and "q9/stage-1" in text and "2h" in text
    assert files_under(client, base) == before
    report = run_gc(capsys, etc)
    assert report["total_items"] == 1 and report["items"][0]["deleted"]
    assert files_under(client, base) == []


def test_exchange_without_lease_collected_only_when_old(
    local_etc: tuple[pathlib.Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    etc, base = local_etc
    client = LocalFileSystemClient([base])
    client.write_file(join(base, "q2", "old", "ab-0", "0", "data-0.xsf"), b"z" * 100)
    client.write_file(join(base, "q2", "new", "ab-0", "0", "data-0.xsf"), b"z" * 100)
    os.makedirs(os.path.join(base, "q3", "empty"))  # crash between mkdir and the lease
    age_tree(os.path.join(base, "q2", "old"), 7200)
    age_tree(os.path.join(base, "q3"), 7200)
    report = run_gc(capsys, etc, "--older-than", "1h")
    names = sorted(i["name"] for i in report["items"])
    assert names == ["q2/old", "q3/empty"]
    assert all("no lease" in i["reason"] for i in report["items"])
    assert report["kept_exchanges"] == 1
    assert files_under(client, base) == [join(base, "q2", "new", "ab-0", "0", "data-0.xsf")]
    assert not os.path.exists(os.path.join(base, "q3"))


def test_live_exchange_attempts_untouched_and_foreign_data_ignored(
    local_etc: tuple[pathlib.Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    etc, base = local_etc
    client = LocalFileSystemClient([base])
    d = join(base, "q4", "live")
    now = time.time()
    client.write_file(
        join(d, "_lease"), LeaseRecord("exchange q4/live", "h", 1, now, now, 3600).encode()
    )
    # A crashed worker's uncommitted attempt inside a live exchange: the owner's close() does it.
    client.write_file(join(d, "ab-0", "7", "data-0.xsf"), b"a" * 10)
    client.write_file(join(base, "notes", "misc", "readme.txt"), b"not ours")
    # Partial files (the local form of incomplete uploads): a slow writer's inside the live
    # exchange, and one left by a dead writer elsewhere.
    slow = os.path.join(d, "ab-0", "8", "data-0.xsf.1234.partial")
    stale = os.path.join(base, "q8", "data-0.xsf.5678.partial")
    for path in (slow, stale):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pathlib.Path(path).write_bytes(b"p" * 10)
    age_tree(base, 7200)
    before = files_under(client, base)
    for _ in range(3):
        report = run_gc(capsys, etc, "--older-than", "1h")
        assert report["live_exchanges"] == 1
        assert [i["kind"] for i in report["items"]] in (["uploads"], [])
    assert files_under(client, base) == before
    assert os.path.exists(slow) and not os.path.exists(stale)


def test_storage_failure_is_reported_with_the_path(tmp_path: pathlib.Path) -> None:
    base = str(tmp_path / "b")
    inner = LocalFileSystemClient([base])
    d = write_dead_exchange(inner, base, "q5", "e", expired_ago=7200)
    age_tree(d, 7200)
    write_dead_exchange(inner, base, "q6", "e", expired_ago=7200)
    age_tree(join(base, "q6"), 7200)

    class Failing(CountingFileSystemClient):
        def _delete_recursive(self, native: str) -> None:
            if "q5" in native:
                raise PermissionError(13, "Permission denied", native)
            super()._delete_recursive(native)

    client = Failing(inner)
    client.max_retries = 0
    result = GarbageCollector(ExchangeStorage(client, (base,)), older_than=60).run()
    assert [f.name for f in result.failures] == ["q5/e"]
    assert d in result.failures[0].error
    assert [i.name for i in result.items] == ["q6/e"]  # the others still proceed
    assert os.path.exists(d)


def test_inventory_describes_attempts(tmp_path: pathlib.Path) -> None:
    base = str(tmp_path / "b")
    client = LocalFileSystemClient([base])
    write_dead_exchange(client, base, "q7", "e", expired_ago=0)
    [info] = find_exchanges(client, [base])
    info = describe_exchange(client, info)
    assert [
        (tp.task_partition, [(a.attempt_id, a.committed) for a in tp.attempts])
        for tp in info.task_partitions
    ] == [(0, [(0, True)]), (1, [(3, False)])]
    assert info.size == 1510


def test_bad_older_than_and_missing_etc(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["gc", "--etc", str(tmp_path), "--older-than", "10 parsecs"])
    assert "duration" in capsys.readouterr().err
    missing = tmp_path / "nope"
    assert main(["gc", "--etc", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_exchange_closed_between_listing_and_verdict_is_not_reported(
    tmp_path: pathlib.Path,
) -> None:
    base = str(tmp_path / "b")
    client = LocalFileSystemClient([base])
    d = write_dead_exchange(client, base, "q10", "e", expired_ago=7200)
    age_tree(d, 7200)
    [info] = find_exchanges(client, [base])
    client.delete_recursive(d)  # its owner's close() (or another gc) got there first
    gc = GarbageCollector(ExchangeStorage(client, (base,)), older_than=60)
    verdict = gc._verdict(client, info)
    assert verdict.gone and not verdict.collect
    assert gc.run().items == ()
