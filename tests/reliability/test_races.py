"""Racing attempts: many attempts of each task partition commit at once; exactly one is read.

Each attempt's records carry its attempt id, so the check is strict: for every task partition
the records read are exactly the records of ONE attempt (complete, no duplicates, none from
another attempt), and it is the first committed attempt reported by ``sink_finished``.
Attempts race in threads (with a barrier right before ``finish()``), and in processes, some of
them aborted or SIGKILLed at a random storage operation.
"""

from __future__ import annotations

import random
import signal
import threading

import pytest

from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.faults import FaultPlan

from ._harness import SPAWN, make_manager, manager_properties, new_exchange

PARTITIONS = 2


def attempt_records(tp: int, attempt: int, n: int = 12) -> list[tuple[int, bytes]]:
    return [
        (i % PARTITIONS, f"tp{tp}:a{attempt}:r{i}:".encode() + b"x" * (i * 37)) for i in range(n)
    ]


def attempt_of(record: bytes) -> tuple[int, int]:
    tp, a = record.split(b":")[:2]
    return int(tp[2:]), int(a[1:])


def check_read(manager, exchange, expected_selected: dict[int, int | set[int]], figures) -> None:
    exchange.all_required_sinks_finished()
    got: dict[int, list[bytes]] = {}
    for handle in exchange.get_source_handles():
        source = manager.create_source([handle])
        source.no_more_source_handles()
        for record in source:
            tp, _ = attempt_of(bytes(record))
            got.setdefault(tp, []).append(bytes(record))
        source.close()
    wrong = double = lost = 0
    for tp, wanted in expected_selected.items():
        records = got.get(tp, [])
        attempts = {attempt_of(r)[1] for r in records}
        if len(attempts) != 1:
            wrong += 1
            continue
        (attempt,) = attempts
        if isinstance(wanted, int) and attempt != wanted:
            wrong += 1
        if isinstance(wanted, set) and attempt not in wanted:
            wrong += 1
        full = sorted(r for _, r in attempt_records(tp, attempt))
        if len(records) > len(set(records)):
            double += 1
        elif sorted(records) != full:
            lost += 1
    figures.add("races", "wrong_attempt_read", wrong)
    figures.add("races", "double_reads", double)
    figures.add("races", "lost", lost)
    assert (wrong, double, lost) == (0, 0, 0), got


def thread_trial(backend, rng: random.Random, trial: int, figures, attempts: int = 5) -> None:
    manager = make_manager(backend.base_dirs, backend.fs_props)
    exchange = new_exchange(manager, "raceq", f"t{trial}", PARTITIONS)
    tps = 3
    sinks = [exchange.add_sink(tp) for tp in range(tps)]
    exchange.no_more_sinks()
    outcome: dict[tuple[int, int], str] = {}
    barrier = threading.Barrier(tps * attempts)

    def run(tp: int, attempt: int, abort: bool) -> None:
        sink = manager.create_sink(exchange.instantiate_sink(sinks[tp], attempt))
        for p, r in attempt_records(tp, attempt):
            sink.add(p, r)
        barrier.wait()
        if abort:
            sink.abort()
            outcome[tp, attempt] = "aborted"
        else:
            sink.finish()
            outcome[tp, attempt] = "committed"

    threads = []
    for tp in range(tps):
        aborted = set(rng.sample(range(attempts), rng.randrange(attempts)))  # never all
        for a in range(attempts):
            threads.append(threading.Thread(target=run, args=(tp, a, a in aborted)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected: dict[int, int | set[int]] = {}
    concurrent = rng.random() < 0.3
    for tp in range(tps):
        committed = [a for a in range(attempts) if outcome.get((tp, a)) == "committed"]
        reports = committed[:]
        rng.shuffle(reports)
        # An engine may also report aborted attempts late (after a committed one): ignored.
        late = [a for a in range(attempts) if outcome.get((tp, a)) == "aborted"]
        if concurrent:
            ts = [
                threading.Thread(target=exchange.sink_finished, args=(sinks[tp], a))
                for a in reports
            ]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            expected[tp] = set(committed)
        else:
            for a in reports:
                exchange.sink_finished(sinks[tp], a)
            expected[tp] = reports[0]
        for a in late:
            exchange.sink_finished(sinks[tp], a)
    check_read(manager, exchange, expected, figures)
    exchange.close()
    left = backend.leftovers()
    figures.add("races", "leftover_files", len(left))
    assert left == []
    figures.add("races", "thread_trials")
    figures.add("races", "racing_attempts", tps * attempts)


def process_trial(backend, tmp_path, rng: random.Random, trial: int, figures, attempts=4) -> None:
    manager = make_manager(backend.base_dirs, backend.fs_props)
    client = load_filesystem(backend.fs_props, backend.base_dirs)
    exchange = new_exchange(manager, "raceq", f"p{trial}", PARTITIONS)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    from exchange_store.exchange.paths import manifest_path
    from exchange_store.testing.faults import faulty_properties

    from ._harness import _sink_child

    procs = []
    instances = []
    for a in range(attempts):
        inst = exchange.instantiate_sink(sink, a)
        instances.append(inst)
        # One attempt always survives; the others may be killed at a random operation.
        plan = FaultPlan.crash_at(rng.randrange(12)) if a and rng.random() < 0.5 else FaultPlan()
        fs = faulty_properties(backend.fs_props, plan)
        p = SPAWN.Process(
            target=_sink_child,
            args=(manager_properties(backend.base_dirs), fs, inst, attempt_records(0, a)),
        )
        procs.append(p)
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    codes = [p.exitcode for p in procs]
    assert all(c in (0, -signal.SIGKILL) for c in codes), codes
    committed = [
        a
        for a, inst in enumerate(instances)
        if client.exists(manifest_path(inst.attempt_directory))
    ]
    assert 0 in committed
    reports = committed[:]
    rng.shuffle(reports)
    for a in reports:
        exchange.sink_finished(sink, a)
    for a in range(attempts):
        if a not in committed:
            exchange.sink_finished(sink, a)  # late report of a dead attempt: ignored
    check_read(manager, exchange, {0: reports[0]}, figures)
    exchange.close()
    left = backend.leftovers()
    figures.add("races", "leftover_files", len(left))
    assert left == []
    client.close()
    figures.add("races", "process_trials")
    figures.add("races", "racing_attempts", attempts)
    figures.add("races", "killed_attempts", sum(1 for c in codes if c == -signal.SIGKILL))


def test_racing_attempts_threads(backend, figures):
    rng = random.Random(1234)
    for trial in range(10 if backend.name == "local" else 3):
        thread_trial(backend, rng, trial, figures)


def test_racing_attempts_processes(backend, tmp_path, figures):
    rng = random.Random(99)
    for trial in range(2 if backend.name == "local" else 1):
        process_trial(backend, tmp_path, rng, trial, figures)


@pytest.mark.reliability
def test_racing_attempts_threads_full(backend, figures):
    rng = random.Random(4321)
    for trial in range(200 if backend.name == "local" else 40):
        thread_trial(backend, rng, trial, figures)


@pytest.mark.reliability
def test_racing_attempts_processes_full(backend, tmp_path, figures):
    rng = random.Random(77)
    for trial in range(20 if backend.name == "local" else 6):
        process_trial(backend, tmp_path, rng, trial, figures)
