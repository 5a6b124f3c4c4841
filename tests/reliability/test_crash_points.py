"""Crash-point sweeps: SIGKILL a real writer process at every storage operation.

For a sink's write + commit, the operations of a clean run are counted first (the fault
client's op log), then for every index N a fresh attempt runs in a spawned process whose
client SIGKILLs it at operation N (before it runs, or after it ran: a lost response). Then:

* the crashed attempt is either committed (its manifest exists) and then reads back exactly,
  or it is not, and it is never read: a retry (a new attempt) commits and reads back exactly;
* the data read is exactly the fault-free data, once;
* ``Exchange.close()`` leaves no byte (no object, no partial file, no multipart upload).

The full sweep (every N, before and after) is marked ``reliability``; the normal suite runs
a few points: the first, the middle, the commit (manifest) operation and the last.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from exchange_store.errors import ExchangeStoreError
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.faults import FaultPlan

from ._harness import (
    expected_by_partition,
    make_manager,
    manager_properties,
    new_exchange,
    read_all,
    records_for,
    run_sink_in_child,
)

PARTITIONS = 3
RECORDS = records_for(seed=7, partitions=PARTITIONS, count=60)
EXPECTED = expected_by_partition(RECORDS)

_op_cache: dict[str, list[Any]] = {}


def sink_ops(backend, tmp_path) -> list[Any]:
    """The operations of a clean sink write + commit (counted once per backend and session)."""
    if backend.name not in _op_cache:
        _op_cache[backend.name] = _trial(backend, tmp_path, None, after=False)["ops"]
    return _op_cache[backend.name]


def _manifest_exists(client, instance) -> bool:
    from exchange_store.exchange.paths import manifest_path

    return client.exists(manifest_path(instance.attempt_directory))


def _trial(backend, tmp_path, n: int | None, *, after: bool) -> dict[str, Any]:
    """One crash point: attempt 0 dies at op ``n`` (None: clean run), attempt 1 retries."""
    from exchange_store.testing.faults import read_op_log_file

    manager = make_manager(backend.base_dirs, backend.fs_props)
    client = load_filesystem(backend.fs_props, backend.base_dirs)
    tag = "clean" if n is None else f"n{n}{'a' if after else 'b'}"
    exchange = new_exchange(manager, "crashq", f"ex-{tag}", PARTITIONS)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    first = exchange.instantiate_sink(sink, 0)
    log = str(tmp_path / f"ops-{backend.name}-{tag}.log")
    plan = FaultPlan() if n is None else FaultPlan.crash_at(n, after=after)
    code = run_sink_in_child(
        manager_properties(backend.base_dirs), backend.fs_props, first, RECORDS, plan, log
    )
    ops = read_op_log_file(log)
    if n is None:
        assert code == 0
    else:
        assert code == -signal.SIGKILL, f"child exit {code} at crash point {n}"
        assert ops[-1].index == n and ops[-1].fault == "crash"
    committed = _manifest_exists(client, first)
    if n is not None and not after:
        # Killed before op n ran: committed only if the manifest was written earlier.
        assert committed == any(
            o.op == "write_exclusive" and "_manifest" in o.path for o in ops[:-1]
        )
    # The engine retries the task: a new attempt commits.
    retry = exchange.instantiate_sink(sink, 1)
    with manager.create_sink(retry) as s:
        for p, r in RECORDS:
            s.add(p, r)
    if committed:
        exchange.sink_finished(sink, 0)  # the crashed attempt had committed: it is the one read
        exchange.sink_finished(sink, 1)  # late duplicate: ignored
    else:
        exchange.sink_finished(sink, 1)
        exchange.sink_finished(sink, 0)  # never committed, not selected: ignored
    exchange.all_required_sinks_finished()
    got = read_all(manager, exchange.get_source_handles())
    exchange.close()
    leftovers = backend.leftovers()
    client.close()
    return {"ops": ops, "committed": committed, "got": got, "leftovers": leftovers}


def _check(figures, backend, result) -> None:
    lost = 0 if result["got"] == EXPECTED else 1
    figures.add("crash_points", "exchange_points_tried")
    figures.add("crash_points", "exchange_crashed_attempts_committed", int(result["committed"]))
    figures.add("crash_points", "lost", lost)
    figures.add("crash_points", "leftover_files", len(result["leftovers"]))
    assert result["got"] == EXPECTED
    assert result["leftovers"] == [], f"left behind on {backend.name}: {result['leftovers']}"


def _commit_index(ops) -> int:
    return next(o.index for o in ops if o.op == "write_exclusive" and "_manifest" in o.path)


@pytest.mark.parametrize("where", ["first", "middle", "commit", "last", "commit-after"])
def test_sink_crash_points_subset(backend, tmp_path, figures, where):
    ops = sink_ops(backend, tmp_path)
    commit = _commit_index(ops)
    n, after = {
        "first": (0, False),
        "middle": (len(ops) // 2, False),
        "commit": (commit, False),
        "last": (len(ops) - 1, False),
        "commit-after": (commit, True),
    }[where]
    result = _trial(backend, tmp_path, n, after=after)
    _check(figures, backend, result)
    assert result["committed"] == (n > commit or (n == commit and after))


@pytest.mark.reliability
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_sink_crash_points_full(backend, tmp_path, figures, after):
    ops = sink_ops(backend, tmp_path)
    commit = _commit_index(ops)
    figures.add("crash_points", f"exchange_ops_{backend.name}", len(ops) if not after else 0)
    for n in range(len(ops)):
        result = _trial(backend, tmp_path, n, after=after)
        _check(figures, backend, result)
        assert result["committed"] == (n > commit or (n == commit and after)), n


def test_never_committed_attempt_is_not_read_when_reported_first(backend, tmp_path, figures):
    """The crashed, uncommitted attempt reported first is an error, never an empty read."""
    manager = make_manager(backend.base_dirs, backend.fs_props)
    exchange = new_exchange(manager, "crashq", "ex-reported", PARTITIONS)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    first = exchange.instantiate_sink(sink, 0)
    code = run_sink_in_child(
        manager_properties(backend.base_dirs),
        backend.fs_props,
        first,
        RECORDS,
        FaultPlan.crash_at(3),
    )
    assert code == -signal.SIGKILL
    with pytest.raises(ExchangeStoreError):
        exchange.sink_finished(sink, 0)
        exchange.all_required_sinks_finished()
        handles = exchange.get_source_handles()
        read_all(manager, handles)
    exchange.close()
    assert backend.leftovers() == []
    figures.add("crash_points", "exchange_points_tried")
