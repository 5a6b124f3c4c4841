"""Policy semantics of the runner, on the threads executor (fast) and real exchange storage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sched_tasks import Gen, Resumable, Sum, Tags, config, files_under, read_runs

from exchange_store.errors import ConfigurationError
from exchange_store.scheduler.dedup import EXCHANGE_MANAGER_REQUIRED
from exchange_store.scheduler.model import Query, Stage, StorageSpec
from exchange_store.scheduler.retry import QueryFailedError
from exchange_store.scheduler.runner import QueryRunner

EXPECTED = sum(range(400))  # 4 gen tasks x 100 numbers


def three_stage(log_dir: str, faults: dict | None = None, query_id: str = "q1") -> Query:
    faults = faults or {}
    return Query(
        query_id,
        (
            Stage("gen", Gen(log_dir, faults=faults), 4, output_partitions=3),
            Stage("sum", Sum(log_dir, faults=faults), 3, inputs=("gen",)),
            Stage("total", Sum(log_dir, faults=faults), 1, inputs=("sum",)),
        ),
    )


def run(cfg, storage: StorageSpec, query: Query, **kwargs):
    with QueryRunner(cfg, storage, **kwargs) as runner:
        return runner.run(query)


def runs_per_task(log_dir: str) -> Counter:
    return Counter((s, t) for _, s, t, _ in read_runs(log_dir))


def assert_clean(tmp_path: Path) -> None:
    assert files_under(tmp_path / "ex1", tmp_path / "ex2", tmp_path / "snapshots") == []


@pytest.mark.parametrize("kind", ["NONE", "QUERY", "TASK"])
def test_no_failure_each_policy(kind: str, storage, log_dir, tmp_path: Path) -> None:
    result = run(config(kind), storage, three_stage(log_dir))
    assert result.rows == [str(EXPECTED).encode()]
    assert result.query_attempts == 1
    assert set(runs_per_task(log_dir).values()) == {1}
    assert result.bytes_spooled > 0 and result.bytes_stored > 0
    assert_clean(tmp_path)


def test_none_fails_on_first_failure(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 1, 0, 0): "storage"}
    with pytest.raises(QueryFailedError) as info:
        run(config("NONE"), storage, three_stage(log_dir, faults))
    err = info.value
    assert (err.stage_id, err.task_id, err.attempts) == ("sum", 1, 1)
    assert "retry-policy=NONE" in str(err)
    assert "injected storage failure in sum/1" in str(err)
    assert runs_per_task(log_dir)["sum", 1] == 1
    assert_clean(tmp_path)


def test_query_policy_reruns_whole_query(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 1, 0, 0): "storage"}
    result = run(config("QUERY"), storage, three_stage(log_dir, faults))
    assert result.rows == [str(EXPECTED).encode()]
    assert result.query_attempts == 2
    runs = read_runs(log_dir)
    # every gen task ran in both query attempts; finished stages were re-run too
    assert Counter(s for q, s, _, _ in runs if q == 1) == {"gen": 4, "sum": 3, "total": 1}
    assert {s for q, s, _, _ in runs if q == 0} >= {"gen", "sum"}
    assert_clean(tmp_path)


def test_query_policy_exhausted(storage, log_dir) -> None:
    faults = {("gen", 2, 0, q): "storage" for q in range(3)}
    with pytest.raises(QueryFailedError) as info:
        run(config("QUERY", query_retry_attempts=2), storage, three_stage(log_dir, faults))
    assert "failed in all 3 query attempts" in str(info.value)
    assert "stage gen task 2" in str(info.value)
    assert info.value.attempts == 3


def test_task_policy_reruns_only_failed_task(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 1, 0, 0): "storage", ("gen", 3, 0, 0): "error"}
    result = run(config("TASK"), storage, three_stage(log_dir, faults))
    assert result.rows == [str(EXPECTED).encode()]
    assert result.query_attempts == 1
    runs = runs_per_task(log_dir)
    assert runs.pop(("sum", 1)) == 2
    assert runs.pop(("gen", 3)) == 2
    assert set(runs.values()) == {1}  # nothing else ran twice
    assert result.runs_by_task()["sum", 1] == 2
    failed = [a for a in result.attempts if a.status == "failed"]
    assert {(a.stage_id, a.task_id, a.attempt_id) for a in failed} == {("sum", 1, 0), ("gen", 3, 0)}
    assert_clean(tmp_path)


def test_task_retries_exhausted_error_names_everything(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 2, "*", 0): "storage"}
    with pytest.raises(QueryFailedError) as info:
        run(config("TASK", task_retries=2), storage, three_stage(log_dir, faults))
    msg = str(info.value)
    assert "Query q1" in msg
    assert "stage sum task 2 ran 3 attempts" in msg
    assert "task-retry-attempts-per-task=2" in msg
    assert "injected storage failure in sum/2" in msg
    assert info.value.attempts == 3
    assert runs_per_task(log_dir)["sum", 2] == 3
    assert_clean(tmp_path)


@pytest.mark.parametrize("kind", ["QUERY", "TASK"])
def test_user_error_is_never_retried(kind: str, storage, log_dir) -> None:
    faults = {("gen", 0, 0, 0): "user"}
    with pytest.raises(QueryFailedError) as info:
        run(config(kind), storage, three_stage(log_dir, faults))
    assert "non-retryable" in str(info.value)
    assert "UserError: bad input row in gen/0" in str(info.value)
    assert runs_per_task(log_dir)["gen", 0] == 1
    assert {q for q, *_ in read_runs(log_dir)} == {0}


def test_backoff_with_injected_clock(storage, log_dir) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        import time

        time.sleep(0.0005)

    faults = {("gen", 1, a, 0): "storage" for a in range(4)}
    cfg = config("TASK", initial_delay=10.0, max_delay=35.0)
    result = run(cfg, storage, three_stage(log_dir, faults), clock=lambda: now[0], sleep=sleep)
    assert result.rows == [str(EXPECTED).encode()]
    delays = [a.delay for a in result.attempts if (a.stage_id, a.task_id) == ("gen", 1)]
    assert delays == [0.0, 10.0, 20.0, 35.0, 35.0]
    assert now[0] >= 1000.0 + 100.0  # waited the back-off on the injected clock


def test_query_backoff_uses_injected_sleep(storage, log_dir) -> None:
    slept: list[float] = []
    faults = {("gen", 0, 0, q): "storage" for q in range(2)}
    cfg = config("QUERY", initial_delay=3.0, max_delay=100.0)
    result = run(cfg, storage, three_stage(log_dir, faults), sleep=slept.append)
    assert result.query_attempts == 3
    assert [s for s in slept if s >= 1] == [3.0, 6.0]


def test_query_policy_without_exchange_manager_exact_message(log_dir) -> None:
    query = Query("q1", (Stage("only", Tags(log_dir), 1),))
    for kind in ("QUERY", "TASK"):
        with pytest.raises(ConfigurationError) as info:
            run(config(kind), StorageSpec(), query)
        assert str(info.value) == (
            "Exchange manager must be configured for the failure recovery capabilities to be "
            "fully functional"
        )
        assert str(info.value) == EXCHANGE_MANAGER_REQUIRED
    assert read_runs(log_dir) == []


def test_single_stage_none_without_exchange_manager(log_dir) -> None:
    query = Query("q1", (Stage("only", Gen(log_dir, per=5), 2),))
    result = run(config("NONE"), StorageSpec(), query)
    assert sorted(result.rows) == sorted(str(i).encode() for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9))


def test_dedup_buffer_spills_and_hides_failed_attempt(storage, log_dir, tmp_path: Path) -> None:
    # 1kB buffer: the final stage's 4 x 100 records spill into the exchange; the first query
    # attempt fails after task 0 of the final stage delivered, and its rows never show.
    query = Query(
        "q1",
        (
            Stage("gen", Gen(log_dir, per=100), 2, output_partitions=2),
            Stage(
                "out",
                Gen(log_dir, per=100, faults={("out", 1, 0, 0): "storage"}),
                2,
                inputs=("gen",),
            ),
        ),
    )
    result = run(config("QUERY", executor="threads"), storage, query)
    assert result.query_attempts == 2
    assert sorted(int(r) for r in result.rows) == list(range(200))
    assert_clean(tmp_path)


def test_resume_from_task_snapshot(storage, log_dir, tmp_path: Path) -> None:
    query = Query("q1", (Stage("long", Resumable(log_dir), 1),))
    result = run(config("TASK"), storage, query)
    assert result.rows == [b"restored=step-2"]
    assert runs_per_task(log_dir)["long", 0] == 2
    assert_clean(tmp_path)  # the task's snapshot job was dropped when the query ended


def test_speculation_first_finisher_wins(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 1, 0, 0): "slow"}
    query = Query(
        "q1",
        (
            Stage("gen", Gen(log_dir), 4, output_partitions=2),
            Stage("sum", Sum(log_dir, faults=faults, tag=True), 2, inputs=("gen",)),
            Stage("all", Tags(log_dir), 1, inputs=("sum",)),
        ),
    )
    cfg = config("TASK", speculation_enabled=True, slow_task_threshold=0.2)
    result = run(cfg, storage, query)
    totals = {0: sum(v for v in range(400) if v % 2 == 0), 1: sum(v for v in range(400) if v % 2)}
    # task 1's output comes from the speculative attempt 1 only
    assert sorted(result.rows) == sorted([f"{totals[0]}:0".encode(), f"{totals[1]}:1".encode()])
    by_attempt = {(a.stage_id, a.task_id, a.attempt_id): a for a in result.attempts}
    assert by_attempt["sum", 1, 1].speculative and by_attempt["sum", 1, 1].status == "finished"
    assert by_attempt["sum", 1, 0].status in ("killed", "duplicate")
    assert_clean(tmp_path)


def test_task_timeout_kills_and_retries(storage, log_dir, tmp_path: Path) -> None:
    faults = {("sum", 0, 0, 0): "slow"}
    cfg = config("TASK", task_timeout=1.0)
    result = run(cfg, storage, three_stage(log_dir, faults))
    assert result.rows == [str(EXPECTED).encode()]
    failed = [a for a in result.attempts if a.status == "failed"]
    assert ("sum", 0, 0) in [(a.stage_id, a.task_id, a.attempt_id) for a in failed]
    assert all("task.timeout=1s" in a.error for a in failed)
    assert_clean(tmp_path)
