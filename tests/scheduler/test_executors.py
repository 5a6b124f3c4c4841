"""Real worker processes (SIGKILL), the demo command end to end, and Dask on a LocalCluster."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sched_tasks import Gen, Sum, config, files_under, read_runs

from exchange_store.demo.query import (
    DemoSpec,
    FailurePlan,
    build_demo_query,
    collect_result,
    reference_result,
)
from exchange_store.scheduler.model import Query, Stage
from exchange_store.scheduler.retry import QueryFailedError
from exchange_store.scheduler.runner import QueryRunner

ETC = Path(__file__).resolve().parents[2] / "etc"
EXPECTED = sum(range(400))


def three_stage(log_dir: str, faults: dict) -> Query:
    return Query(
        "qp",
        (
            Stage("gen", Gen(log_dir, faults=faults), 4, output_partitions=3),
            Stage("sum", Sum(log_dir, faults=faults), 3, inputs=("gen",)),
            Stage("total", Sum(log_dir), 1, inputs=("sum",)),
        ),
    )


def test_sigkilled_worker_reruns_only_that_task(storage, log_dir, tmp_path: Path) -> None:
    faults = {("gen", 2, 0, 0): "kill"}
    with QueryRunner(config("TASK", "processes"), storage) as runner:
        result = runner.run(three_stage(log_dir, faults))
    assert result.rows == [str(EXPECTED).encode()]
    runs = Counter((s, t) for _, s, t, _ in read_runs(log_dir))
    assert runs.pop(("gen", 2)) == 2
    assert set(runs.values()) == {1}
    (failed,) = [a for a in result.attempts if a.status == "failed"]
    assert (failed.stage_id, failed.task_id, failed.attempt_id) == ("gen", 2, 0)
    assert "killed by SIGKILL" in failed.error
    assert files_under(tmp_path / "ex1", tmp_path / "ex2", tmp_path / "snapshots") == []


def test_sigkilled_worker_fails_query_under_none(storage, log_dir) -> None:
    faults = {("sum", 0, 0, 0): "kill"}
    with (
        QueryRunner(config("NONE", "processes"), storage) as runner,
        pytest.raises(
            QueryFailedError, match="stage sum task 0 ran 1 attempt; last error: worker process"
        ),
    ):
        runner.run(three_stage(log_dir, faults))


def test_demo_query_on_processes_with_failures(storage) -> None:
    spec = DemoSpec(rows=40_000, splits=4, partitions=2, chunks=3, groups=500)
    plan = FailurePlan(
        {("scan", 1): "kill", ("scan", 2): "storage", ("final", 0): "storage"}, can_kill=True
    )
    with QueryRunner(config("TASK", "processes"), storage) as runner:
        result = runner.run(build_demo_query("demo_t", spec, plan))
    assert collect_result(result.rows).equals(reference_result(spec))
    assert result.runs_by_task()["scan", 1] == 2
    assert result.runs() == 7 + 3


def test_demo_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from exchange_store.cli.main import main
    from exchange_store.snapshots import generate_key_file

    shutil.copytree(ETC, tmp_path / "etc")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    generate_key_file(str(tmp_path / "var" / "snapshot.key"))
    code = main(
        [
            "demo",
            "--rows",
            "60000",
            "--splits",
            "4",
            "--partitions",
            "2",
            "--failure-rate",
            "0.2",
            "--workers",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "result correct" in out
    assert "storage clean" in out
    assert "killed by SIGKILL" in out
    assert files_under(tmp_path / "var" / "exchange", tmp_path / "var" / "snapshots") == []


def test_demo_command_wrong_policy_none_fails(tmp_path: Path, monkeypatch, capsys) -> None:
    from exchange_store.cli.main import main
    from exchange_store.snapshots import generate_key_file

    shutil.copytree(ETC, tmp_path / "etc")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    generate_key_file(str(tmp_path / "var" / "snapshot.key"))
    code = main(
        [
            "demo",
            "--rows",
            "20000",
            "--splits",
            "2",
            "--partitions",
            "2",
            "--policy",
            "none",
            "--executor",
            "threads",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "query failed" in out


@contextlib.contextmanager
def _users_cluster() -> Iterator[tuple[Any, Any]]:
    """A LocalCluster of 2 worker processes that the user brings, and a DaskExecutor on it."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from exchange_store.scheduler.executors import DaskExecutor

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    try:
        with Client(cluster) as client, DaskExecutor(2, client=client) as executor:
            yield client, executor
    finally:
        cluster.close()


def test_dask_executor_on_local_cluster(storage, log_dir) -> None:
    faults = {("sum", 1, 0, 0): "storage"}
    with _users_cluster() as (client, executor):
        assert executor.slots == 2
        runner = QueryRunner(config("TASK", "dask"), storage, executor=executor)
        result = runner.run(three_stage(log_dir, faults))
        assert result.rows == [str(EXPECTED).encode()]
        assert result.runs_by_task()["sum", 1] == 2
        # tasks ran in the cluster's worker processes, not here
        pids = {r[-1] for r in read_runs(log_dir, pids=True)}
        assert os.getpid() not in pids
        worker_pids = set(client.run(os.getpid).values())
        assert pids and pids <= worker_pids


def test_dask_cluster_the_user_brings_fails_a_lost_attempt_at_once(storage, log_dir) -> None:
    """Dask's own allowed-failures (3 by default) would run the killed attempt again, and
    again; the executor fails it at once instead and the runner retries with a new attempt."""
    faults = {("gen", 2, 0, 0): "kill"}
    with _users_cluster() as (_, executor):
        runner = QueryRunner(config("TASK", "dask"), storage, executor=executor)
        result = runner.run(three_stage(log_dir, faults))
    assert result.rows == [str(EXPECTED).encode()]
    gen2 = [a for a in result.attempts if (a.stage_id, a.task_id) == ("gen", 2)]
    assert [a.attempt_id for a in gen2] == [0, 1]
    assert gen2[0].status == "failed" and "lost" in gen2[0].error
    # Attempt 0 ran once: its re-run by Dask stopped before the task (no second log line).
    runs = Counter(read_runs(log_dir))
    assert runs[0, "gen", 2, 0] == 1
