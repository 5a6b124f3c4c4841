"""A query survives its coordinator (journal, resume) and lost committed files (lineage).

Coordinators are real processes (the demo command) killed with SIGKILL together with their
workers (the whole process group); damage is a flipped byte or a deleted committed file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sched_tasks import config

from exchange_store.cli.demo import ensure_key_files
from exchange_store.demo.query import (
    DemoSpec,
    FailurePlan,
    build_demo_query,
    collect_result,
    reference_result,
)
from exchange_store.errors import QueryFailedError
from exchange_store.filesystems.factory import load_component_client
from exchange_store.scheduler.model import StorageSpec
from exchange_store.scheduler.runner import QueryRunner, SchedulerEvent

ETC = Path(__file__).resolve().parents[2] / "etc"
SPEC = DemoSpec(rows=120_000, splits=6, partitions=3, chunks=2, groups=5_000)


def _storage(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> StorageSpec:
    props = {
        "exchange.base-directories": str(tmp_path / "ex"),
        "exchange.encryption-key-file": str(_key(tmp_path)),
    }
    filesystems = None
    if kind == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        props["exchange.base-directories"] = f"s3://{bucket}/ex"
        props["exchange-filesystem-type"] = "exchange"
        filesystems = {"exchange": dict(request.getfixturevalue("s3_properties"))}
    return StorageSpec(exchange_properties=props, exchange_filesystems=filesystems)


def _key(tmp_path: Path) -> Path:
    from exchange_store.crypto.keyfile import generate_key_file

    path = tmp_path / "exchange.key"
    if not path.exists():
        generate_key_file(path)
    return path


def _client_and_base(storage: StorageSpec):
    props = dict(storage.exchange_properties or {})
    base = props["exchange.base-directories"]
    client = load_component_client(
        (base,),
        props.get("exchange-filesystem-type", "exchange"),
        storage.exchange_filesystems or {},
        explicit="exchange-filesystem-type" in props,
        key="exchange-filesystem-type",
        source="test",
        sources={},
    )
    return client, base


def _damage(client, paths: list[str], how: str, rnd: random.Random) -> str:
    victim = rnd.choice(paths)
    if how == "delete":
        client.delete(victim)
    else:
        data = bytearray(client.read_file(victim))
        data[rnd.randrange(len(data) // 2)] ^= 0x40  # in the blocks, not the file's footer
        client.write_file(victim, bytes(data))
    return victim


@pytest.mark.parametrize("how", ["flip", "delete"])
@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_lost_committed_file_between_stages_is_recovered_by_lineage(
    request, tmp_path, kind, how
) -> None:
    storage = _storage(request, tmp_path, kind)
    client, base = _client_and_base(storage)
    rnd = random.Random(f"{kind}-{how}")
    damaged: list[str] = []

    def listener(event: SchedulerEvent) -> None:
        # Between the stages: scan committed, final not started yet.
        if event.kind == "stage-finished" and event.stage_id == "scan" and not damaged:
            # On S3 small pieces were merged: readers read the merged files.
            files = [i.path for i in client.walk(f"{base}/q_lineage")]
            read = [f for f in files if f.endswith(".xsb")] or [
                f for f in files if f.endswith(".xsf")
            ]
            damaged.append(_damage(client, read, how, rnd))

    query = build_demo_query("q_lineage", SPEC, FailurePlan())
    with QueryRunner(config("TASK"), storage, listener=listener) as runner:
        result = runner.run(query)
    assert damaged
    assert collect_result(result.rows).equals(reference_result(SPEC))
    assert result.lineage_reruns >= 1
    assert result.runs("scan") == SPEC.splits + result.lineage_reruns
    assert list(client.walk(base)) == []


def test_lineage_needs_task_retries(tmp_path, request) -> None:
    storage = _storage(request, tmp_path, "local")
    client, base = _client_and_base(storage)

    def listener(event: SchedulerEvent) -> None:
        if event.kind == "stage-finished" and event.stage_id == "scan":
            for info in client.walk(f"{base}/q_none"):
                if info.path.endswith(".xsf"):
                    client.delete(info.path)

    query = build_demo_query("q_none", SPEC, FailurePlan())
    with (
        QueryRunner(config("NONE"), storage, listener=listener) as runner,
        pytest.raises(QueryFailedError, match="lost"),
    ):
        runner.run(query)
    assert list(client.walk(base)) == []


# ---------------------------------------------------------------------- coordinator SIGKILL


def _etc(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> tuple[Path, object, str]:
    """A copy of the shipped etc, relative paths under ``tmp_path``; on S3 the exchange goes to
    moto."""
    request.getfixturevalue("monkeypatch").chdir(tmp_path)
    etc = tmp_path / "etc"
    shutil.copytree(ETC, etc)
    if kind == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        text = (etc / "exchange-manager.properties").read_text()
        text = text.replace(
            "exchange.base-directories=var/exchange", f"exchange.base-directories=s3://{bucket}/ex"
        )
        (etc / "exchange-manager.properties").write_text(text)
        props = request.getfixturevalue("s3_properties")
        (etc / "filesystem" / "exchange.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items())
        )
    assert len(ensure_key_files(str(etc))) == 2  # what the demo would do first
    storage = StorageSpec.from_etc(etc)
    return etc, storage, kind


def _demo(etc: Path, query_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exchange_store.cli.main",
        "demo",
        "--etc",
        str(etc),
        "--query-id",
        query_id,
        "--json",
        "--rows",
        "240000",
        "--splits",
        "8",
        "--partitions",
        "4",
        "--failure-rate",
        "0",
        "--workers",
        "2",
    ]


def _committed(client, base: str, query_id: str) -> set[tuple[str, str]]:
    """(exchange, task partition dir) of every committed attempt of the query."""
    out = set()
    for info in client.walk(f"{base.rstrip('/')}/{query_id}"):
        if info.path.endswith("/_manifest"):
            parts = info.path.split("/")
            out.add((parts[-4], parts[-3]))
    return out


def _kill_when(cmd: list[str], cwd: Path, ready, timeout: float = 120.0) -> None:
    """Start ``cmd`` in its own process group; SIGKILL the group once ``ready()``."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        with_group = proc.poll() is None
        if with_group:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(ProcessLookupError):  # workers of a leader that ended
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("kind", "kill_at"),
    [
        ("local", 0),
        ("local", 3),
        ("local", 8),
        ("local", 10),
        pytest.param("s3", 6, marks=pytest.mark.s3),
    ],
)
def test_coordinator_sigkilled_then_resumed(request, tmp_path, kind, kill_at) -> None:
    etc, storage, _ = _etc(tmp_path, request, kind)
    client, base = _client_and_base_from_etc(storage)
    query_id = f"q_kill_{kind}_{kill_at}"
    cmd = _demo(etc, query_id)
    _kill_when(cmd, tmp_path, lambda: len(_committed(client, base, query_id)) >= kill_at)
    before = _committed(client, base, query_id)
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["correct"] is True
    assert summary["leftover_files"] == 0
    if before:
        assert summary["resumed"] is True
        assert summary["tasks_reused"] >= len(before)
        # A reused task never ran again: only the others did.
        assert summary["tasks_run"] <= 8 + 4 + 1 - len(before)
    assert list(client.walk(base)) == []
    assert [p for p in (tmp_path / "var" / "snapshots").rglob("*") if p.is_file()] == []


def _client_and_base_from_etc(storage: StorageSpec):
    from exchange_store.scheduler.worker import open_exchange_manager

    manager = open_exchange_manager(storage)
    assert manager is not None
    return manager.client, manager.base_directories[0]


def test_coordinator_killed_and_file_damaged_resumes_through_lineage(request, tmp_path) -> None:
    etc, storage, _ = _etc(tmp_path, request, "local")
    client, base = _client_and_base_from_etc(storage)
    query_id = "q_kill_damage"
    cmd = _demo(etc, query_id)
    _kill_when(cmd, tmp_path, lambda: len(_committed(client, base, query_id)) >= 9)
    data = [i.path for i in client.walk(f"{base}/{query_id}") if i.path.endswith(".xsf")]
    assert data
    _damage(client, data, "flip", random.Random(7))
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["correct"] and summary["resumed"] and summary["tasks_reused"] >= 1
    assert list(client.walk(base)) == []


def test_gc_keeps_a_killed_query_within_its_lease_ttl_and_collects_it_after(
    request, tmp_path
) -> None:
    etc, storage, _ = _etc(tmp_path, request, "local")
    manager_file = etc / "exchange-manager.properties"
    manager_file.write_text(manager_file.read_text() + "exchange.lease-ttl=3s\n")
    client, base = _client_and_base_from_etc(storage)
    query_id = "q_kill_gc"
    _kill_when(_demo(etc, query_id), tmp_path, lambda: len(_committed(client, base, query_id)) >= 3)
    journal = f"{base}/{query_id}/_journal/journal"
    assert client.exists(journal)

    def gc() -> dict:
        cli = [sys.executable, "-m", "exchange_store.cli.main", "gc", "--etc", str(etc)]
        out = subprocess.run(
            [*cli, "--older-than", "0s", "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    assert gc()["total_items"] == 0  # the leases are still fresh: it may be resumed
    assert client.exists(journal)
    time.sleep(3.5)
    assert gc()["total_items"] >= 2  # nobody resumed it within the TTL: journal and exchanges
    assert list(client.walk(base)) == []


_COORDINATOR = """
import sys
from sched_tasks import Steps, Tags, config
from exchange_store.scheduler.model import Query, Stage, StorageSpec
from exchange_store.scheduler.runner import QueryRunner

storage = StorageSpec(
    exchange_properties={"exchange.base-directories": sys.argv[1],
                         "exchange.encryption-key-file": sys.argv[2]},
    snapshot_properties={"snapshot.base-directories": sys.argv[3],
                         "snapshot.encryption-enabled": "false"},
)
query = Query("q_steps", (Stage("long", Steps(), 1, output_partitions=1),
                          Stage("out", Tags("."), 1, inputs=("long",))))
with QueryRunner(config("TASK"), storage) as runner:
    result = runner.run(query)
print(result.rows[0].decode(), result.resumed, flush=True)
"""


def test_a_long_task_resumed_after_a_coordinator_restart_starts_from_its_checkpoint(
    tmp_path,
) -> None:
    from exchange_store.snapshots import SnapshotStore

    script = tmp_path / "coordinator.py"
    script.write_text(_COORDINATOR)
    snapshots = tmp_path / "snapshots"
    args = [str(tmp_path / "ex"), str(_key(tmp_path)), str(snapshots)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    store = SnapshotStore.from_properties(
        {"snapshot.base-directories": str(snapshots), "snapshot.encryption-enabled": "false"}
    )
    job = "q_steps-q0-long-0"

    def progressed() -> bool:
        latest = store.latest(job) if job in store.list_jobs() else None
        return latest is not None and int(store.read_task_state_bytes(latest, "state")) >= 5

    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not progressed() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    start, resumed = out.stdout.split()
    assert int(start.split("=")[1]) >= 5  # not from the beginning
    assert resumed == "True"
    assert [p for p in tmp_path.joinpath("ex").rglob("*") if p.is_file()] == []
    assert store.list_jobs() == []
