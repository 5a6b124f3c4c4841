"""Storage faults: transient ones are retried and the data is intact; permanent ones (and a
full disk) fail the attempt cleanly with a StorageError naming the path, nothing half-visible;
damaged reads are IntegrityErrors, never wrong bytes."""

from __future__ import annotations

import pytest

from exchange_store.errors import (
    ExchangeStoreError,
    IntegrityError,
    StorageError,
    TransientStorageError,
)
from exchange_store.exchange.paths import manifest_path
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.faults import (
    Fault,
    FaultPlan,
    faulty_properties,
    register_faulty_filesystem,
)

from ._harness import (
    expected_by_partition,
    make_manager,
    new_exchange,
    read_all,
    records_for,
)

PARTITIONS = 3
RECORDS = records_for(seed=11, partitions=PARTITIONS, count=40)
EXPECTED = expected_by_partition(RECORDS)


@pytest.fixture(autouse=True)
def _faulty_type():
    register_faulty_filesystem()


class Setup:
    def __init__(self, backend, name: str):
        self.backend = backend
        self.manager = make_manager(backend.base_dirs, backend.fs_props)
        self.client = load_filesystem(backend.fs_props, backend.base_dirs)
        self.exchange = new_exchange(self.manager, "faultq", name, PARTITIONS)
        self.sink = self.exchange.add_sink(0)
        self.exchange.no_more_sinks()

    def faulty_manager(self, plan: FaultPlan):
        return make_manager(self.backend.base_dirs, faulty_properties(self.backend.fs_props, plan))

    def write(self, manager, attempt: int):
        """Write + commit one attempt through ``manager``; returns the instance handle."""
        instance = self.exchange.instantiate_sink(self.sink, attempt)
        sink = manager.create_sink(instance)
        try:
            for p, r in RECORDS:
                sink.add(p, r)
            sink.finish()
        except BaseException:
            sink.abort()
            raise
        return instance

    def attempt_files(self, instance) -> list[str]:
        return [f.path for f in self.client.walk(instance.attempt_directory)]

    def finish_and_read(self, attempt: int):
        self.exchange.sink_finished(self.sink, attempt)
        self.exchange.all_required_sinks_finished()
        return read_all(self.manager, self.exchange.get_source_handles())

    def close(self):
        self.exchange.close()
        left = self.backend.leftovers()
        self.client.close()
        return left


def clean_ops(backend) -> list:
    s = Setup(backend, "count")
    fm = s.faulty_manager(FaultPlan())
    s.write(fm, 0)
    ops = list(fm.client.op_log)
    assert s.finish_and_read(0) == EXPECTED
    assert s.close() == []
    return ops


KINDS = ["transient", "throttle", "server-error", "permanent", "enospc"]


def key_indexes(ops) -> list[int]:
    """First op, first write, the middle, every open/close and the commit."""
    keep = {0, 1, len(ops) // 2, len(ops) - 1}
    keep |= {o.index for o in ops if o.op in ("open_write", "stream.close", "write_exclusive")}
    return sorted(keep)


@pytest.mark.parametrize("kind", KINDS)
def test_fault_at_key_sink_operations(backend, kind, figures):
    ops = clean_ops(backend)
    indexes = key_indexes(ops)
    if backend.name != "local":  # keep the S3 part of the fast suite short: one point each
        if kind not in ("transient", "permanent"):
            pytest.skip("S3: transient and permanent in the fast suite; all in the full sweep")
        commit = next(o.index for o in ops if o.op == "write_exclusive")
        indexes = [commit] if kind == "transient" else [len(ops) // 2]
    fault_sweep(backend, kind, figures, ops, indexes)


@pytest.mark.reliability
@pytest.mark.parametrize("kind", KINDS)
def test_fault_at_every_sink_operation(backend, kind, figures):
    ops = clean_ops(backend)
    fault_sweep(backend, kind, figures, ops, range(len(ops)))


def fault_sweep(backend, kind, figures, ops, indexes) -> None:
    """A fault at op N: retried to success, or the attempt fails cleanly and a retry succeeds."""
    for n in indexes:
        s = Setup(backend, f"{kind}-{n}")
        fm = s.faulty_manager(FaultPlan.single(kind, at=n))
        figures.add("storage_faults", "faults_injected")
        instance = s.exchange.instantiate_sink(s.sink, 0)
        try:
            s.write(fm, 0)
            ok = True
        except StorageError as exc:
            ok = False
            # Named: a path of this attempt.
            assert instance.attempt_directory in str(exc) or "faultq" in str(exc), str(exc)
            if kind in ("permanent", "enospc"):
                assert not isinstance(exc, TransientStorageError)
            half = int(s.client.exists(manifest_path(instance.attempt_directory)))
            half += len(s.attempt_files(instance))
            figures.add("storage_faults", "half_visible", half)
            assert half == 0, f"{kind} at op {n} ({ops[n].op}) left {s.attempt_files(instance)}"
        retried_ok = kind in ("transient", "throttle", "server-error") and ops[n].op in (
            "open_write",
            "write_exclusive",
        )
        if retried_ok:
            assert ok, f"transient {kind} at {ops[n].op} was not retried"
            figures.add("storage_faults", "retried_to_success")
        if ok:
            got = s.finish_and_read(0)
        else:
            figures.add("storage_faults", "failed_cleanly")
            s.write(s.manager, 1)  # the engine's retry
            got = s.finish_and_read(1)
        lost = int(got != EXPECTED)
        figures.add("storage_faults", "lost", lost)
        assert got == EXPECTED
        left = s.close()
        figures.add("storage_faults", "leftover_files", len(left))
        assert left == []


def test_throttled_commit_beyond_retries_names_manifest(backend, figures):
    s = Setup(backend, "throttle-k")
    k = s.client.max_retries + 1
    plan = FaultPlan((Fault("throttle", times=k, ops=("write_exclusive",)),))
    fm = s.faulty_manager(plan)
    instance = s.exchange.instantiate_sink(s.sink, 0)
    with pytest.raises(TransientStorageError) as info:
        s.write(fm, 0)
    assert "_manifest" in str(info.value)
    assert "SlowDown" in str(info.value)
    assert not s.client.exists(manifest_path(instance.attempt_directory))
    assert s.attempt_files(instance) == []
    s.write(s.manager, 1)
    assert s.finish_and_read(1) == EXPECTED
    assert s.close() == []
    figures.add("storage_faults", "faults_injected", k)


def test_lost_commit_response_commits_once(backend, figures):
    s = Setup(backend, "lost-response")
    fm = s.faulty_manager(FaultPlan((Fault("transient", ops=("write_exclusive",), after=True),)))
    s.write(fm, 0)
    assert s.finish_and_read(0) == EXPECTED
    assert s.close() == []
    figures.add("storage_faults", "faults_injected")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault("transient", times=2, ops=("read_range",)), None),
        (Fault("throttle", times=2, ops=("read_range", "read")), None),
        (Fault("latency", latency=0.001, times=5), None),
        (Fault("permanent", ops=("read_range",)), StorageError),
        (Fault("short-read", ops=("read_range",), fraction=0.5), IntegrityError),
        (Fault("bit-flip", ops=("read_range",), fraction=0.37), IntegrityError),
        (Fault("bit-flip", ops=("read_range",), fraction=0.99), IntegrityError),
        (Fault("short-read", ops=("read_range",), fraction=0.0), IntegrityError),
    ],
    ids=lambda v: v.kind if isinstance(v, Fault) else getattr(v, "__name__", "ok"),
)
def test_reader_faults(backend, fault, expected, figures):
    s = Setup(backend, "reader")
    s.write(s.manager, 0)
    s.exchange.sink_finished(s.sink, 0)
    s.exchange.all_required_sinks_finished()
    handles = s.exchange.get_source_handles()
    reader = s.faulty_manager(FaultPlan((fault,)))
    figures.add("storage_faults", "faults_injected")
    if expected is None:
        assert read_all(reader, handles) == EXPECTED
    else:
        with pytest.raises(expected) as info:
            read_all(reader, handles)
        if expected is StorageError:
            assert not isinstance(info.value, IntegrityError)
            assert ".xsf" in str(info.value), str(info.value)
        else:
            figures.add("corruption", "detected")
    assert read_all(s.manager, handles) == EXPECTED  # the stored data was never damaged
    assert s.close() == []


def test_storage_error_message_keeps_cause(local_client, local_root):
    """A translated error must say what failed and why, not only the path."""
    from exchange_store.testing.faults import FaultyFileSystemClient

    client = FaultyFileSystemClient(
        local_client, FaultPlan.single("enospc", ops=("write_replace",)), no_wait=True
    )
    with pytest.raises(StorageError) as info:
        client.write_file(local_root + "/f", b"x")
    message = str(info.value)
    assert local_root + "/f" in message
    assert "write_file" in message
    assert "No space left on device" in message


def test_errors_are_exchange_store_errors(backend):
    s = Setup(backend, "tree")
    fm = s.faulty_manager(FaultPlan.single("permanent", ops=("open_write",)))
    with pytest.raises(ExchangeStoreError):
        s.write(fm, 0)
    assert s.close() == []
