"""The same instance handle run more than once: exactly one committed copy, read once.

Engines run one attempt again with the very same ``ExchangeSinkInstanceHandle`` (Dask
recomputes a lost key with the same arguments; a worker retries after a lost reply), in
sequence or at once, and any run may be killed. The kill matrix here runs one instance two or
three times, in threads or in processes, each run finishing, aborting after a random number of
records, or (processes) SIGKILLed at a random storage operation of its add/finish/abort. After
each trial the records read back exactly once and nothing is left after ``close()``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from exchange_store.testing.faults import FaultPlan, faulty_properties, register_faulty_filesystem

from ._api import exchange_manager
from ._harness import (
    CHILD_TIMEOUT,
    expected_by_partition,
    make_manager,
    manager_properties,
    new_exchange,
    read_all,
    records_for,
)

PARTITIONS = 5
RECORDS = records_for(7, PARTITIONS, count=80)
EXPECTED = expected_by_partition(RECORDS)
# Forked from a server that imported the package once: a child starts in milliseconds.
FORKSERVER = multiprocessing.get_context("forkserver")
FORKSERVER.set_forkserver_preload(["exchange_store", "exchange_store.testing.faults"])

# What one run does: finish, abort after k records, or die (SIGKILL at storage op k in a
# process; in a thread, stop after k records and never finish nor abort).
Action = tuple[str, int]


def _run(sink: Any, action: Action, receipt_file: str | None) -> Any:
    kind, k = action
    for i, (partition, record) in enumerate(RECORDS):
        if kind in ("abort", "vanish") and i == k:
            break
        sink.add(partition, record)
    if kind == "abort":
        sink.abort()
        return None
    if kind == "vanish":
        return None
    receipt = sink.finish()
    if receipt_file is not None:
        Path(receipt_file).write_bytes(pickle.dumps(receipt))
    return receipt


def _child(manager_props: dict, fs_props: dict, instance: Any, action: Action, out: str) -> None:
    register_faulty_filesystem()
    manager = exchange_manager().from_properties(manager_props, filesystems={"exchange": fs_props})
    _run(manager.create_sink(instance), action, out)
    os._exit(0)


def _random_action(rng: random.Random, processes: bool) -> Action:
    kinds = ["finish", "abort", "kill" if processes else "vanish"]
    kind = rng.choice(kinds)
    if kind == "kill":
        return kind, rng.randrange(0, 40)  # a storage op of the run (past the end: it finishes)
    return kind, rng.randrange(0, len(RECORDS) + 1)


def _runs_in_processes(
    backend: Any, tmp: Path, instance: Any, actions: list[Action], concurrent: bool
) -> list[Any]:
    props = manager_properties(backend.base_dirs)
    procs = []
    outs = []
    for n, (kind, k) in enumerate(actions):
        plan = FaultPlan.crash_at(k) if kind == "kill" else FaultPlan()
        fs = faulty_properties(backend.fs_props, plan)
        out = str(tmp / f"receipt-{instance.exchange_id}-{n}")
        outs.append(out)
        proc = FORKSERVER.Process(target=_child, args=(props, fs, instance, (kind, k), out))
        proc.start()
        procs.append(proc)
        if not concurrent:
            proc.join(CHILD_TIMEOUT)
    for proc in procs:
        proc.join(CHILD_TIMEOUT)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            pytest.fail(f"a run of the instance hung: {actions}")
    return [pickle.loads(Path(o).read_bytes()) for o in outs if Path(o).exists()]


def _runs_in_threads(
    manager: Any, instance: Any, actions: list[Action], concurrent: bool
) -> list[Any]:
    receipts: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(actions) if concurrent else 1)

    def body(action: Action) -> None:
        try:
            start.wait()
            receipt = _run(manager.create_sink(instance), action, None)
            if receipt is not None:
                receipts.append(receipt)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(a,)) for a in actions]
    for t in threads:
        t.start()
        if not concurrent:
            t.join()
    for t in threads:
        t.join()
    assert errors == [], errors
    return receipts


def _trial(backend: Any, tmp: Path, figures: Any, seed: int, processes: bool) -> None:
    rng = random.Random(seed)
    runs = rng.choice([2, 3])
    concurrent = rng.random() < 0.5
    actions = [_random_action(rng, processes) for _ in range(runs)]
    where = f"seed {seed}: {'processes' if processes else 'threads'}, " + (
        f"{'concurrent' if concurrent else 'sequential'} runs {actions}"
    )
    manager = make_manager(backend.base_dirs, backend.fs_props)
    exchange = new_exchange(manager, "rerunq", f"t{seed}", PARTITIONS)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    instance = exchange.instantiate_sink(sink, 0)
    if processes:
        receipts = _runs_in_processes(backend, tmp, instance, actions, concurrent)
    else:
        receipts = _runs_in_threads(manager, instance, actions, concurrent)
    figures.add("reruns", "trials")
    figures.add("reruns", "runs", runs)
    figures.add("reruns", "killed", sum(a[0] in ("kill", "vanish") for a in actions))
    # Every run that finished names the same commit.
    assert len({r.run_id for r in receipts}) <= 1, where
    committed = manager.committed_receipt(instance)
    if receipts:
        assert committed is not None and committed.run_id == receipts[0].run_id, where
    if committed is None:  # every run aborted or died before its commit: the engine retries
        committed = _run(manager.create_sink(instance), ("finish", 0), None)
    # A run that starts after the commit skips nothing it must not: finishing returns the
    # commit, and its own files go.
    late = manager.create_sink(instance)
    late.add(0, b"late")
    assert late.finish() == committed, where
    exchange.sink_finished(sink, 0, committed if rng.random() < 0.5 else None)
    exchange.all_required_sinks_finished()
    got = read_all(manager, exchange.get_source_handles())
    lost = sum(len(v) for v in EXPECTED.values()) - sum(len(v) for v in got.values())
    figures.add("reruns", "lost", max(0, lost))
    figures.add("reruns", "double_reads", max(0, -lost))
    assert got == EXPECTED, where
    exchange.close()
    left = backend.leftovers()
    figures.add("reruns", "leftover_files", len(left))
    assert left == [], f"{where}: left {left}"
    manager.close()


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_rerun_kill_matrix(backend, tmp_path, figures, processes) -> None:
    trials = 8 if backend.name == "local" else 4
    for seed in range(trials):
        _trial(backend, tmp_path, figures, seed, processes)


@pytest.mark.reliability
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_rerun_kill_matrix_full(backend, tmp_path, figures, processes) -> None:
    for seed in range(100, 160):
        _trial(backend, tmp_path, figures, seed, processes)
