"""The fault-injecting client itself: counting, each fault kind, plans, child processes."""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import signal
from pathlib import Path

import pytest
import tenacity

from exchange_store.errors import (
    CommitConflictError,
    InvalidArgumentError,
    StorageError,
    TransientStorageError,
)
from exchange_store.filesystems.base import join
from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.testing.faults import (
    Fault,
    FaultPlan,
    FaultyFileSystemClient,
    FaultySpec,
)

DATA = bytes(range(256)) * 64


def faulty(local_client: LocalFileSystemClient, *faults: Fault) -> FaultyFileSystemClient:
    client = FaultyFileSystemClient(local_client, FaultPlan(faults))
    client.retry_wait = tenacity.wait_none()
    return client


def workload(client: FaultyFileSystemClient, root: str) -> None:
    """A small mix of every kind of operation."""
    with client.create(join(root, "d", "stream.bin")) as s:
        s.write(DATA[:1000])
        s.write(DATA[1000:])
    client.write_exclusive(join(root, "d", "marker"), b"m")
    client.write_file(join(root, "d", "replace"), b"r")
    assert client.read_file(join(root, "d", "stream.bin")) == DATA
    assert client.read_range(join(root, "d", "stream.bin"), 10, 5) == DATA[10:15]
    assert client.size(join(root, "d", "marker")) == 1
    assert [i.name for i in client.list(join(root, "d"))] == ["marker", "replace", "stream.bin"]
    client.delete(join(root, "d", "replace"))
    client.delete_recursive(join(root, "d"))


def files_under(root: str) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file())


def test_clean_run_counts_every_operation(local_client, local_root, figures):
    client = faulty(local_client)
    workload(client, local_root)
    ops = [r.op for r in client.op_log]
    assert ops == [
        "open_write",
        "stream.write",
        "stream.write",
        "stream.close",
        "write_exclusive",
        "write_replace",
        "read",
        "read_range",
        "info",
        "list",
        "delete",
        "delete_recursive",
    ]
    assert [r.index for r in client.op_log] == list(range(len(ops)))
    assert client.injected == 0
    assert client.op_log[4].path == join(local_root, "d", "marker")
    assert files_under(local_root) == []


def test_clean_run_is_deterministic(local_client, local_root):
    a, b = faulty(local_client), faulty(local_client)
    workload(a, local_root)
    workload(b, local_root)
    assert [(r.op, r.path) for r in a.op_log] == [(r.op, r.path) for r in b.op_log]


# Operations of `workload` that the base class retries (stream writes are not idempotent).
RETRIED = [0, 4, 5, 6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("index", RETRIED)
def test_transient_fault_at_every_op_is_retried(local_client, local_root, index, figures):
    client = faulty(local_client, Fault("transient", at=index))
    workload(client, local_root)  # succeeds, data intact (asserted inside)
    assert client.injected == 1
    hit = client.injected_at()[0]
    assert hit.index == index
    # The retry is the next operation, with the same name and path.
    retry = client.op_log[index + 1]
    assert (retry.op, retry.path, retry.fault) == (hit.op, hit.path, None)
    assert files_under(local_root) == []
    figures.add("storage_faults", "faults_injected")


def test_transient_stream_write_is_not_retried_but_named(local_client, local_root):
    # A stream write is not idempotent: the base class does not retry it; the caller sees a
    # TransientStorageError naming the path and must abort.
    client = faulty(local_client, Fault("transient", ops=("stream.write",)))
    path = join(local_root, "x.bin")
    stream = client.create(path)
    with pytest.raises(TransientStorageError, match=str(path)):
        stream.write(b"abc")
    stream.abort()
    assert files_under(local_root) == []


@pytest.mark.parametrize("kind", ["throttle", "server-error"])
def test_s3_style_errors_for_first_k_tries(local_client, local_root, kind):
    path = join(local_root, "m")
    k = local_client.max_retries
    client = faulty(local_client, Fault(kind, times=k, ops=("write_exclusive",)))
    client.write_exclusive(path, b"x")
    assert client.injected == k
    assert client.read_file(path) == b"x"

    client = faulty(local_client, Fault(kind, times=k + 1, ops=("write_exclusive",)))
    with pytest.raises(TransientStorageError) as info:
        client.write_exclusive(join(local_root, "n"), b"x")
    assert str(join(local_root, "n")) in str(info.value)
    assert ("503 SlowDown" if kind == "throttle" else "500 InternalError") in str(info.value)
    assert client.injected == k + 1
    assert not os.path.exists(join(local_root, "n"))


def test_permanent_fault_not_retried_and_names_path(local_client, local_root):
    client = faulty(local_client, Fault("permanent", ops=("write_replace",)))
    path = join(local_root, "a", "b")
    with pytest.raises(StorageError) as info:
        client.write_file(path, b"x")
    assert not isinstance(info.value, TransientStorageError)
    assert path in str(info.value)
    assert info.value.filename == path
    assert client.op_count == 1
    assert files_under(local_root) == []


def test_enospc_on_stream_write(local_client, local_root):
    client = faulty(local_client, Fault("enospc", at=1, ops=("stream.write",)))
    path = join(local_root, "big.bin")
    with (
        pytest.raises(StorageError, match="No space left on device") as info,
        client.create(path) as s,
    ):
        for _ in range(4):
            s.write(DATA)
    assert path in str(info.value)
    assert files_under(local_root) == []  # the context manager aborted the partial file


def test_short_stream_write_leaves_nothing(local_client, local_root):
    client = faulty(local_client, Fault("short-write", ops=("stream.write",), fraction=0.3))
    path = join(local_root, "s.bin")
    stream = client.create(path)
    with pytest.raises(StorageError, match=str(path)):
        stream.write(DATA)
    stream.abort()
    assert files_under(local_root) == []


def test_torn_whole_file_write_is_partial(local_client, local_root):
    # A short write on a whole-file primitive models a backend that lost atomicity: the prefix
    # lands. The layers above must detect it (checksums), which the corruption suite checks.
    client = faulty(local_client, Fault("short-write", ops=("write_replace",), fraction=0.5))
    path = join(local_root, "t")
    with pytest.raises(StorageError):
        client.write_file(path, b"0123456789")
    assert Path(path).read_bytes() == b"01234"


def test_lost_response_on_exclusive_create_is_idempotent(local_client, local_root):
    client = faulty(local_client, Fault("transient", ops=("write_exclusive",), after=True))
    path = join(local_root, "commit")
    client.write_exclusive(path, b"mine")  # landed, response lost, retry finds own bytes
    assert Path(path).read_bytes() == b"mine"
    assert [r.op for r in client.op_log] == ["write_exclusive", "write_exclusive", "read"]
    with pytest.raises(CommitConflictError, match=path):
        client.write_exclusive(path, b"other")


def test_filters_by_op_and_path_glob(local_client, local_root):
    client = faulty(local_client, Fault("permanent", at=1, ops=("write_replace",), path="*/keep-*"))
    client.write_file(join(local_root, "keep-1"), b"1")  # matching #0: passes
    client.write_file(join(local_root, "other"), b"2")  # not matching
    with pytest.raises(StorageError, match="keep-2"):
        client.write_file(join(local_root, "keep-2"), b"3")  # matching #1: fails
    client.write_file(join(local_root, "keep-3"), b"4")  # matching #2: passes
    assert [r.fault for r in client.op_log] == [None, None, "permanent", None]


def test_latency_fault_runs_the_operation(local_client, local_root):
    client = faulty(local_client, Fault("latency", latency=0.001, times=3))
    client.write_file(join(local_root, "l"), b"x")
    assert client.read_file(join(local_root, "l")) == b"x"
    assert client.injected == 2
    assert all(r.fault == "latency" for r in client.op_log)


def test_confinement_applies_on_top(local_client, local_root):
    client = faulty(local_client)
    with pytest.raises(InvalidArgumentError, match="outside"):
        client.write_file("/etc/passwd-x", b"x")
    with pytest.raises(InvalidArgumentError, match=r"\.\."):
        client.read_file(join(local_root, "..", "x"))
    assert client.op_count == 0


def test_capabilities_are_the_inner_clients(local_client):
    client = faulty(local_client)
    assert client.supports_atomic_create is local_client.supports_atomic_create
    assert client.supports_multipart_cleanup is local_client.supports_multipart_cleanup
    assert client.roots == local_client.roots


def test_plan_json_and_pickle_round_trip():
    plan = FaultPlan(
        (
            Fault("crash", at=7, after=True),
            Fault("throttle", at=0, times=3, ops=("write_exclusive", "read"), path="*/_manifest"),
            Fault("short-write", fraction=0.25),
        )
    )
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert pickle.loads(pickle.dumps(plan)) == plan
    spec = FaultySpec({"fs.client.type": "local"}, ("/tmp/x",), plan)
    assert pickle.loads(pickle.dumps(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"kind": "crash"}', "JSON list"),
        ('[{"kind": "meteor"}]', "unknown fault kind 'meteor'"),
        ('[{"kind": "crash", "at": -1}]', "non-negative"),
        ('[{"kind": "crash", "times": 0}]', "times"),
        ('[{"kind": "crash", "ops": ["format_disk"]}]', "format_disk"),
        ('[{"kind": "crash", "when": 1}]', "unknown fault field"),
        ('[{"kind": "short-write", "fraction": 2}]', "fraction"),
    ],
)
def test_bad_plans_are_refused(text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        FaultPlan.from_json(text)


def _child_write(spec: FaultySpec, root: str) -> None:
    client = spec.build()
    with client.create(join(root, "child.bin")) as s:
        s.write(DATA)
    client.write_exclusive(join(root, "child.marker"), b"done")


def _run_child(spec: FaultySpec, root: str) -> int | None:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_child_write, args=(spec, root))
    proc.start()
    proc.join(60)
    return proc.exitcode


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_crash_in_child_process_is_sigkill(local_root, at, figures):
    spec = FaultySpec({"fs.client.type": "local"}, (local_root,), FaultPlan.crash_at(at))
    assert _run_child(spec, local_root) == -signal.SIGKILL
    # Before the stream's close (ops 0..2) nothing is visible; at 3 the data file is visible
    # but the marker is not.
    visible = sorted(p.name for p in Path(local_root).iterdir() if not p.name.endswith(".partial"))
    assert visible == (["child.bin"] if at == 3 else [])
    figures.add("fault_client", "child_crashes")


def test_child_without_faults_completes(local_root):
    spec = FaultySpec({"fs.client.type": "local"}, (local_root,))
    assert _run_child(spec, local_root) == 0
    assert Path(local_root, "child.bin").read_bytes() == DATA
    assert Path(local_root, "child.marker").read_bytes() == b"done"


def test_errno_of_enospc_reaches_the_cause(local_client, local_root):
    client = faulty(local_client, Fault("enospc", ops=("write_exclusive",)))
    with pytest.raises(StorageError) as info:
        client.write_exclusive(join(local_root, "e"), b"x")
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC


def test_registry_type_faulty_from_properties(local_root, tmp_path):
    from exchange_store.filesystems.registry import load_filesystem
    from exchange_store.testing.faults import (
        faulty_properties,
        read_op_log_file,
        register_faulty_filesystem,
    )

    register_faulty_filesystem()
    register_faulty_filesystem()  # idempotent
    log = str(tmp_path / "ops.log")
    props = faulty_properties(
        {"fs.client.type": "local"},
        FaultPlan.single("permanent", ops=("write_exclusive",)),
        op_log_file=log,
    )
    client = load_filesystem(props, [local_root], source="etc/filesystem/exchange.properties")
    assert isinstance(client, FaultyFileSystemClient)
    client.write_file(join(local_root, "ok"), b"1")
    with pytest.raises(StorageError, match=r"x\.marker"):
        client.write_exclusive(join(local_root, "x.marker"), b"1")
    assert [(r.op, r.fault) for r in read_op_log_file(log)] == [
        ("write_replace", None),
        ("write_exclusive", "permanent"),
    ]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"fs.client.type": "faulty"}, "missing key 'faulty.inner-type'"),
        ({"fs.client.type": "faulty", "faulty.inner-type": "faulty"}, "may not be 'faulty'"),
        (
            {"fs.client.type": "faulty", "faulty.inner-type": "local", "faulty.plan": "[{"},
            "bad value for key 'faulty.plan'",
        ),
        (
            {"fs.client.type": "faulty", "faulty.inner-type": "nfs"},
            "unknown filesystem client type 'nfs'",
        ),
    ],
)
def test_registry_type_faulty_bad_properties(local_root, props, message):
    from exchange_store.errors import ConfigurationError
    from exchange_store.filesystems.registry import load_filesystem
    from exchange_store.testing.faults import register_faulty_filesystem

    register_faulty_filesystem()
    with pytest.raises(ConfigurationError, match=message) as info:
        load_filesystem(props, [local_root], source="etc/filesystem/f.properties")
    assert "etc/filesystem/f.properties" in str(info.value)


def test_crashed_child_leaves_its_op_log(local_root, tmp_path):
    from exchange_store.testing.faults import read_op_log_file

    log = str(tmp_path / "ops.log")
    spec = FaultySpec(
        {"fs.client.type": "local"}, (local_root,), FaultPlan.crash_at(2), op_log_file=log
    )
    assert _run_child(spec, local_root) == -signal.SIGKILL
    records = read_op_log_file(log)
    assert [(r.op, r.fault) for r in records] == [
        ("open_write", None),
        ("stream.write", None),
        ("stream.close", "crash"),
    ]


def test_read_damage_faults(local_client, local_root):
    path = join(local_root, "r")
    local_client.write_file(path, b"\x00" * 10)
    client = faulty(
        local_client,
        Fault("short-read", ops=("read",), fraction=0.3),
        Fault("bit-flip", ops=("read_range",), fraction=0.0),
    )
    assert client.read_file(path) == b"\x00" * 3
    assert client.read_range(path, 2, 4) == b"\x01\x00\x00\x00"
    assert client.read_file(path) == b"\x00" * 10  # times=1: only the first read


def test_crash_after_a_failing_operation_still_crashes(local_root):
    # op 0 is a read of a missing file: it fails, and the planned crash still happens.
    spec = FaultySpec({"fs.client.type": "local"}, (local_root,), FaultPlan.crash_at(0, after=True))
    proc = multiprocessing.get_context("spawn").Process(
        target=_child_read_missing, args=(spec, local_root)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL


def _child_read_missing(spec: FaultySpec, root: str) -> None:
    client = spec.build()
    try:
        client.read_file(join(root, "missing"))
    except FileNotFoundError:
        os._exit(3)
    os._exit(4)
