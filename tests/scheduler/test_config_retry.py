from __future__ import annotations

import concurrent.futures.process
import os
from pathlib import Path

import pytest

from exchange_store.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
    TransientStorageError,
    UserError,
)
from exchange_store.scheduler.config import SchedulerConfig
from exchange_store.scheduler.retry import (
    RemoteTaskError,
    RetryPolicy,
    TaskTimeoutError,
    WorkerCrashedError,
    is_retryable,
)
from exchange_store.scheduler.worker import to_remote_error

ETC = Path(__file__).resolve().parents[2] / "etc"


def test_defaults_are_trinos() -> None:
    cfg = SchedulerConfig.from_properties({})
    assert cfg.retry == RetryPolicy("NONE", 4, 4, 10.0, 60.0, 2.0)
    assert cfg.executor_type == "processes"
    assert cfg.workers == (os.cpu_count() or 1)
    assert cfg.task_timeout is None
    assert cfg.speculation_enabled is False


def test_shipped_etc_is_task_with_short_delays() -> None:
    cfg = SchedulerConfig.from_etc(ETC)
    assert cfg.retry.kind == "TASK"
    assert cfg.retry.initial_delay == pytest.approx(0.1)
    assert cfg.retry.max_delay == pytest.approx(2.0)


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert SchedulerConfig.from_etc(tmp_path).retry.kind == "NONE"


def test_openlookeng_aliases() -> None:
    cfg = SchedulerConfig.from_properties({"task-initial-delay": "1s", "task-max-delay": "5s"})
    assert (cfg.retry.initial_delay, cfg.retry.max_delay) == (1.0, 5.0)


def test_policy_enum_and_executor_keys() -> None:
    cfg = SchedulerConfig.from_properties(
        {
            "retry-policy": "task",
            "executor.type": "threads",
            "executor.workers": "3",
            "task.timeout": "250ms",
            "speculation.enabled": "true",
            "speculation.slow-task-threshold": "1s",
        }
    )
    assert cfg.retry.kind == "TASK"
    assert (cfg.executor_type, cfg.workers, cfg.task_timeout) == ("threads", 3, 0.25)
    assert cfg.speculation_enabled and cfg.slow_task_threshold == 1.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"retry-polcy": "TASK"}, "did you mean 'retry-policy'"),
        ({"retry-policy": "SOMETIMES"}, "NONE | QUERY | TASK"),
        ({"retry-delay-scale-factor": "0.5"}, "must be >= 1"),
        ({"executor.type": "mpi"}, "threads | processes | dask"),
        ({"task-retry-attempts-per-task": "-1"}, "must be >= 0"),
    ],
)
def test_bad_values_name_file_and_key(values: dict[str, str], expected: str) -> None:
    key = next(iter(values))
    with pytest.raises(ConfigurationError) as info:
        SchedulerConfig.from_properties(values, "etc/config.properties", {key: 7})
    assert "etc/config.properties:7" in str(info.value)
    assert expected in str(info.value)


def test_backoff_sequence() -> None:
    policy = RetryPolicy("TASK", initial_delay=0.1, max_delay=2.0, scale_factor=2.0)
    assert [policy.delay(k) for k in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert RetryPolicy(initial_delay=10, max_delay=60).delay(10_000) == 60
    flat = RetryPolicy(initial_delay=1, max_delay=60, scale_factor=1.0)
    assert [flat.delay(k) for k in range(3)] == [1, 1, 1]


def test_policy_run_limits() -> None:
    assert RetryPolicy("TASK", task_retry_attempts_per_task=4).max_task_runs == 5
    assert RetryPolicy("TASK").max_query_runs == 1
    assert RetryPolicy("QUERY", query_retry_attempts=4).max_query_runs == 5
    assert RetryPolicy("QUERY").max_task_runs == 1
    assert RetryPolicy("NONE").max_query_runs == RetryPolicy("NONE").max_task_runs == 1
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(scale_factor=0.9)
    with pytest.raises(InvalidArgumentError):
        RetryPolicy("SOMETIMES")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "exc",
    [
        WorkerCrashedError("killed"),
        concurrent.futures.process.BrokenProcessPool("broken"),
        StorageError("s3://b/k: 500"),
        TransientStorageError("throttled"),
        TimeoutError("slow"),
        TaskTimeoutError("task.timeout"),
        MemoryError(),
        ConnectionResetError(),
        ValueError("internal bug"),
    ],
)
def test_retryable(exc: BaseException) -> None:
    assert is_retryable(exc)
    assert is_retryable(to_remote_error(exc))


@pytest.mark.parametrize(
    "exc",
    [
        UserError("division by zero"),
        ConfigurationError("bad key"),
        InvalidArgumentError("bad id"),
        IntegrityError("tampered"),
        KeyboardInterrupt(),
    ],
)
def test_not_retryable(exc: BaseException) -> None:
    assert not is_retryable(exc)
    assert not is_retryable(to_remote_error(exc))


def test_remote_error_pickles_with_its_decision() -> None:
    import pickle

    remote = to_remote_error(UserError("bad row 7"))
    back = pickle.loads(pickle.dumps(remote))
    assert isinstance(back, RemoteTaskError)
    assert back.type_name == "exchange_store.errors.UserError"
    assert "bad row 7" in str(back)
    assert not is_retryable(back)
