"""The durable Dask shuffle: right rows in the right partitions, lost workers, cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import exchange_store as xs  # noqa: E402
from exchange_store.dask import DurableShuffle  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _frame(rows: int = 20_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "key": rng.integers(0, 500, rows),
            "value": rng.random(rows),
            "name": pd.array([f"n{i % 97}" for i in range(rows)], dtype="string"),
            "kind": pd.Categorical([("a", "b", "c")[i % 3] for i in range(rows)]),
            "at": pd.date_range("2026-01-01", periods=rows, freq="s"),
            "count": pd.array([None if i % 11 == 0 else i for i in range(rows)], dtype="Int64"),
        },
        index=pd.RangeIndex(rows, name="row"),
    )


def _slow(part: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.3)  # keeps the map phase long enough to lose a worker in it
    return part


def _check(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(result.columns) == list(expected.columns)
    assert result.dtypes.to_dict() == expected.dtypes.to_dict()
    assert result.index.name == expected.index.name
    pd.testing.assert_frame_equal(result.sort_index(), expected.sort_index())


def _manager(tmp_path: Path, **extra: str) -> xs.ExchangeManager:
    props = {"exchange.base-directories": str(tmp_path / "spool"), **extra}
    return xs.ExchangeManager.from_properties(props)


def _files(tmp_path: Path) -> list[str]:
    root = tmp_path / "spool"
    return [str(p) for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture(scope="module")
def client():
    import dask

    # Python 3.11: the workers' profiler can deadlock them (CPython gh-106883). Nannies hand
    # this process's configuration to the workers they restart: set it here for good.
    dask.config.set({"distributed.worker.profile.enabled": False})
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_rows_land_by_key_with_dask_dtypes(tmp_path, client) -> None:
    expected = _frame()
    ddf = dd.from_pandas(expected, npartitions=6)
    with DurableShuffle(_manager(tmp_path), query_id="dq1") as shuffler:
        out = shuffler.shuffle(ddf, on="key", npartitions=7)
        assert out.npartitions == 7
        parts = client.compute([out.get_partition(i) for i in range(7)], sync=True)
        owner: dict[int, int] = {}
        for i, part in enumerate(parts):
            for k in part["key"].unique():
                assert owner.setdefault(int(k), i) == i  # one partition per key
        _check(pd.concat(parts), expected)
        _check(out.compute(), expected)  # the local scheduler too
    assert _files(tmp_path) == []  # closing deleted every byte


@pytest.mark.parametrize("phase", ["map", "reduce"])
def test_a_sigkilled_worker_loses_only_its_running_tasks(tmp_path, client, phase) -> None:
    expected = _frame(30_000)
    ddf = dd.from_pandas(expected, npartitions=8)
    if phase == "map":
        ddf = ddf.map_partitions(_slow, meta=ddf._meta)
    manager = _manager(tmp_path, **{"exchange.encryption-enabled": "true"})
    with DurableShuffle(manager, query_id=f"dk{phase}") as shuffler:
        out = shuffler.shuffle(ddf, on=["key"], npartitions=4)
        if phase == "reduce":
            out = out.map_partitions(_slow, meta=out._meta)
        future = client.compute(out)
        pids = client.run(os.getpid)
        killed: list[int] = []

        def kill_when_started() -> None:
            spool = tmp_path / "spool"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not future.done():
                manifests = list(spool.rglob("_manifest")) if spool.exists() else []
                if (phase == "map" and manifests) or (phase == "reduce" and len(manifests) == 8):
                    if phase == "reduce":
                        time.sleep(0.2)  # the slow reduce tasks have started
                    pid = next(iter(pids.values()))
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        result = future.result(timeout=180)
        killer.join()
        assert killed, "no worker was killed while the shuffle ran"
        _check(result, expected)
        # Exactly one committed copy per map task, whatever ran twice.
        assert len(list((tmp_path / "spool").rglob("_manifest"))) == 8
    assert _files(tmp_path) == []
    client.wait_for_workers(2, timeout=60)


def test_bad_arguments(tmp_path) -> None:
    ddf = dd.from_pandas(_frame(100), npartitions=2)
    with DurableShuffle(_manager(tmp_path), query_id="dq3") as shuffler:
        with pytest.raises(xs.InvalidArgumentError, match="no such column"):
            shuffler.shuffle(ddf, on="nope")
        with pytest.raises(xs.InvalidArgumentError, match="npartitions"):
            shuffler.shuffle(ddf, on="key", npartitions=0)
    with pytest.raises(xs.InvalidArgumentError):
        DurableShuffle(_manager(tmp_path), query_id="../x")


@pytest.mark.s3
def test_shuffle_through_s3(client, s3_bucket, s3_properties) -> None:
    manager = xs.ExchangeManager.from_properties(
        {"exchange.base-directories": f"s3://{s3_bucket}/spool", "exchange-filesystem-type": "s3"},
        filesystems={"s3": s3_properties},
    )
    expected = _frame(5_000)
    ddf = dd.from_pandas(expected, npartitions=4)
    with DurableShuffle(manager, query_id="ds3") as shuffler:
        out = shuffler.shuffle(ddf, on="key", npartitions=6)
        _check(client.compute(out, sync=True), expected)
    assert list(manager.client.walk(f"s3://{s3_bucket}/spool")) == []
    manager.close()


def test_two_shuffles_of_one_query_id_never_mix(tmp_path) -> None:
    expected = _frame(3_000)
    ddf = dd.from_pandas(expected, npartitions=3)
    for codec in ("NONE", "LZ4"):  # a second manager, the same query id, after the first closed
        manager = _manager(tmp_path, **{"exchange.compression-codec": codec})
        with DurableShuffle(manager, query_id="same") as shuffler:
            _check(
                shuffler.shuffle(ddf, on="key", npartitions=4).compute(scheduler="sync"), expected
            )
        manager.close()
