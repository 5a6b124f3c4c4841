from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from sched_tasks import Gen

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.exchange.manager import ExchangeManager
from exchange_store.scheduler.dedup import EXCHANGE_MANAGER_REQUIRED, DeduplicationBuffer
from exchange_store.scheduler.model import (
    Query,
    ResultSink,
    Stage,
    StorageSpec,
    TaskSpec,
    snapshot_job_id,
)


def test_query_validation() -> None:
    g = Gen("/tmp")
    with pytest.raises(InvalidArgumentError, match="used twice"):
        Query("q", (Stage("a", g), Stage("a", g)))
    with pytest.raises(InvalidArgumentError, match="not an earlier stage"):
        Query("q", (Stage("a", g, inputs=("b",)), Stage("b", g)))
    with pytest.raises(InvalidArgumentError, match="read by no stage"):
        Query("q", (Stage("a", g), Stage("b", g)))
    with pytest.raises(InvalidArgumentError, match="stage_id"):
        Stage("../x", g)
    with pytest.raises(InvalidArgumentError, match="query_id"):
        Query("q 1", (Stage("a", g),))
    with pytest.raises(InvalidArgumentError, match="task_count"):
        Stage("a", g, 0)
    q = Query("q", [Stage("a", g, 2, output_partitions=3), Stage("b", g, 3, inputs=["a"])])
    assert q.final_stage.stage_id == "b" and q.stage("a").task_count == 2


def test_task_spec_pickles_and_hides_snapshot_key(tmp_path: Path) -> None:
    storage = StorageSpec(snapshot_properties={}, snapshot_key=b"k" * 32)
    assert "kkkk" not in repr(storage)
    spec = TaskSpec("q", 0, "a", 1, 2, 3, Gen(str(tmp_path)), storage, None, 1)
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.name == "a/1.2"


def test_storage_spec_from_etc_is_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    spec = StorageSpec.from_etc("etc")
    assert spec.etc_dir == str(tmp_path / "etc")
    assert not spec.has_exchange_manager and not spec.has_snapshot_store
    with pytest.raises(ConfigurationError, match="missing"):
        StorageSpec.from_etc("missing")


def test_snapshot_job_ids_are_valid_and_bounded() -> None:
    assert snapshot_job_id("q1", 0, "scan", 3) == "q1-q0-scan-3"
    long = snapshot_job_id("q" * 128, 1, "s" * 128, 7)
    assert len(long) <= 128 and long.endswith("-7")
    assert long != snapshot_job_id("q" * 128, 2, "s" * 128, 7)


def test_result_sink() -> None:
    sink = ResultSink()
    sink.add(0, memoryview(b"abc"))
    assert sink.records == [b"abc"] and sink.memory_usage == 3
    with pytest.raises(InvalidArgumentError, match="partition 0, not 1"):
        sink.add(1, b"x")
    sink.abort()
    assert sink.records == []


def test_dedup_buffer_keeps_first_attempt_and_spills(tmp_path: Path) -> None:
    manager = ExchangeManager.from_properties({"exchange.base-directories": str(tmp_path)})
    buffer = DeduplicationBuffer(manager, "q1", "result-q0", task_count=3, capacity=10)
    assert buffer.add(1, [b"one", b"uno"])
    assert not buffer.add(1, [b"late duplicate"])
    assert buffer.add(0, [b"zero-zero"])  # 15 bytes > 10: spills
    assert buffer.spilled and buffer.memory_usage == 0
    assert buffer.add(2, [b"two"])
    assert list(buffer.results()) == [b"zero-zero", b"one", b"uno", b"two"]
    buffer.close()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_dedup_buffer_without_manager_fails_with_trinos_message() -> None:
    buffer = DeduplicationBuffer(None, "q1", "r", task_count=1, capacity=4)
    with pytest.raises(ConfigurationError) as info:
        buffer.add(0, [b"12345"])
    assert str(info.value) == EXCHANGE_MANAGER_REQUIRED


def test_dedup_buffer_missing_task() -> None:
    buffer = DeduplicationBuffer(None, "q1", "r", task_count=2, capacity=100)
    buffer.add(0, [b"a"])
    with pytest.raises(InvalidArgumentError, match=r"\[1\] reported no output"):
        list(buffer.results())
