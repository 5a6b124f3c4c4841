"""Corruption fuzz: random damage to stored exchange data, manifests and snapshot state.

Every read after a mutation must return exactly the committed data or raise IntegrityError
(a missing file may raise StorageFileNotFoundError). Anything else is counted: a read that
returns other bytes is a *silent corruption*, any other exception a *wrong error*; both must
stay at zero. Mutations: bit flips, truncation, byte insertion, overwritten ranges, appended
bytes, and whole files swapped between attempts, task partitions and exchanges (data files and
manifests). The full run (thousands) is marked ``reliability``; a few hundred run normally.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from exchange_store.errors import IntegrityError, StorageFileNotFoundError

from ._harness import (
    expected_by_partition,
    make_manager,
    new_exchange,
    read_all,
    records_for,
)

PARTITIONS = 3
FS = {"fs.client.type": "local"}


def tp_records(tp: int) -> list[tuple[int, bytes]]:
    return records_for(seed=100 + tp, partitions=PARTITIONS, count=30)


EXPECTED = expected_by_partition(tp_records(0) + tp_records(1))


# ---------------------------------------------------------------------- mutations


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random in-place damage to ``data``; returns (kind, damaged)."""
    kind = rng.choice(["bitflip", "bitflip", "truncate", "insert", "overwrite", "append", "zero"])
    n = len(data)
    if kind == "bitflip" and n:
        bit = rng.randrange(n * 8)
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        return kind, bytes(out)
    if kind == "truncate" and n:
        return kind, data[: rng.randrange(n)]
    if kind == "insert":
        pos = rng.randrange(n + 1)
        return kind, data[:pos] + rng.randbytes(rng.randint(1, 16)) + data[pos:]
    if kind == "overwrite" and n:
        pos = rng.randrange(n)
        length = min(rng.randint(1, 64), n - pos)
        junk = rng.randbytes(length)
        if junk == data[pos : pos + length]:
            junk = bytes(b ^ 0xFF for b in junk)
        return kind, data[:pos] + junk + data[pos + length :]
    if kind == "zero" and n:
        pos = rng.randrange(n)
        length = min(rng.randint(1, 512), n - pos)
        if data[pos : pos + length] == bytes(length):
            return "append", data + b"\x00"
        return kind, data[:pos] + bytes(length) + data[pos + length :]
    return "append", data + rng.randbytes(rng.randint(1, 16))


class Outcomes:
    def __init__(self, figures, area: str) -> None:
        self.figures = figures
        self.area = area
        self.failures: list[str] = []

    def judge(self, what: str, read: Callable[[], object], expected: object) -> None:
        self.figures.add(self.area, "mutations_tried")
        try:
            got = read()
        except IntegrityError:
            self.figures.add(self.area, "detected")
            return
        except StorageFileNotFoundError:
            self.figures.add(self.area, "missing_file_reported")
            return
        except Exception as exc:  # anything else is a bug: counted and reported
            self.figures.add(self.area, "wrong_errors")
            self.failures.append(f"{what}: {type(exc).__name__}: {exc}")
            return
        if got == expected:
            self.figures.add(self.area, "harmless")  # e.g. a swap between identical copies
        else:
            self.figures.add(self.area, "silent_corruptions")
            self.failures.append(f"{what}: SILENT CORRUPTION")

    def check(self) -> None:
        assert self.failures == [], "\n".join(self.failures[:20])


# ---------------------------------------------------------------------- exchange data files


class CommittedExchange:
    """An exchange with two task partitions, tp0 with two committed attempts."""

    def __init__(self, root: Path, name: str, encryption: bool) -> None:
        self.base = str(root / f"base-{name}")
        extra = {"exchange.encryption-enabled": str(encryption).lower()}
        self.manager = make_manager([self.base], FS, **extra)
        self.exchange = new_exchange(self.manager, "fuzzq", name, PARTITIONS)
        self.sinks = [self.exchange.add_sink(tp) for tp in range(2)]
        self.exchange.no_more_sinks()
        self.attempt_dirs: dict[tuple[int, int], str] = {}
        for tp, attempts in ((0, (0, 1)), (1, (0,))):
            for a in attempts:
                inst = self.exchange.instantiate_sink(self.sinks[tp], a)
                self.attempt_dirs[tp, a] = inst.attempt_directory
                with self.manager.create_sink(inst) as sink:
                    for p, r in tp_records(tp):
                        sink.add(p, r)

    def select(self) -> list:
        for tp in range(2):
            self.exchange.sink_finished(self.sinks[tp], 0)
        self.exchange.all_required_sinks_finished()
        return self.exchange.get_source_handles()

    def files(self, tp: int, a: int, pattern: str) -> list[Path]:
        return sorted(Path(self.attempt_dirs[tp, a]).glob(pattern))


def data_fuzz(tmp_path: Path, trials: int, seed: int, encryption: bool, figures) -> None:
    rng = random.Random(seed)
    ce = CommittedExchange(tmp_path, "main", encryption)
    other = CommittedExchange(tmp_path, "other", encryption)  # another key, another context
    handles = ce.select()
    assert read_all(ce.manager, handles) == EXPECTED
    selected = ce.files(0, 0, "*/data-*.xsf") + ce.files(1, 0, "*/data-*.xsf")
    assert selected
    outcomes = Outcomes(figures, "corruption")
    for trial in range(trials):
        target = rng.choice(selected)
        original = target.read_bytes()
        kind = rng.choice(
            ["bytes"] * 6 + ["swap-attempt", "swap-tp", "swap-exchange", "swap-index"]
        )
        if kind == "bytes":
            kind, damaged = mutate_bytes(original, rng)
        else:
            tp = 0 if "/0/" in str(target) else 1
            name = target.name
            candidates = {
                "swap-attempt": ce.files(0, 1, "*/data-*.xsf"),
                "swap-tp": ce.files(1 - tp, 0, "*/data-*.xsf")
                if tp == 0
                else ce.files(0, 0, "*/data-*.xsf"),
                "swap-exchange": other.files(tp, 0, "*/data-*.xsf"),
                "swap-index": [f for f in selected if f != target],
            }[kind]
            same_name = [f for f in candidates if f.name == name]
            damaged = rng.choice(same_name or candidates).read_bytes()
        target.write_bytes(damaged)
        try:
            outcomes.judge(
                f"trial {trial} {kind} {target.name} ({'enc' if encryption else 'plain'})",
                lambda: read_all(ce.manager, handles),
                EXPECTED,
            )
        finally:
            target.write_bytes(original)
        figures.add("corruption", f"exchange_data_{kind}")
    ce.exchange.close()
    other.exchange.close()
    outcomes.check()


def manifest_fuzz(tmp_path: Path, trials: int, seed: int, encryption: bool, figures) -> None:
    """Manifests are read by the coordinator: a fresh exchange per trial."""
    rng = random.Random(seed)
    outcomes = Outcomes(figures, "corruption")
    for trial in range(trials):
        root = tmp_path / f"m{trial}"
        root.mkdir()
        ce = CommittedExchange(root, "main", encryption)
        other = CommittedExchange(root, "other", encryption) if trial % 4 == 0 else None
        target = ce.files(0, 0, "_manifest")[0]
        original = target.read_bytes()
        choices = ["bytes"] * 5 + ["swap-attempt", "swap-tp"] + (["swap-exchange"] if other else [])
        kind = rng.choice(choices)
        if kind == "bytes":
            kind, damaged = mutate_bytes(original, rng)
        elif kind == "swap-attempt":
            damaged = ce.files(0, 1, "_manifest")[0].read_bytes()
        elif kind == "swap-tp":
            damaged = ce.files(1, 0, "_manifest")[0].read_bytes()
        else:
            assert other is not None
            damaged = other.files(0, 0, "_manifest")[0].read_bytes()
        target.write_bytes(damaged)

        def read(ce: CommittedExchange = ce) -> object:
            return read_all(ce.manager, ce.select())

        outcomes.judge(f"manifest trial {trial} {kind}", read, EXPECTED)
        figures.add("corruption", f"exchange_manifest_{kind}")
        ce.exchange.close()
        if other:
            other.exchange.close()
        shutil.rmtree(root, ignore_errors=True)
    outcomes.check()


@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_exchange_data_corruption(tmp_path, figures, encryption):
    data_fuzz(tmp_path, 150, seed=1 + encryption, encryption=encryption, figures=figures)


@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_exchange_manifest_corruption(tmp_path, figures, encryption):
    manifest_fuzz(tmp_path, 20, seed=3 + encryption, encryption=encryption, figures=figures)


@pytest.mark.reliability
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_exchange_data_corruption_full(tmp_path, figures, encryption):
    data_fuzz(tmp_path, 3000, seed=10 + encryption, encryption=encryption, figures=figures)


@pytest.mark.reliability
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "checksummed"])
def test_exchange_manifest_corruption_full(tmp_path, figures, encryption):
    manifest_fuzz(tmp_path, 500, seed=20 + encryption, encryption=encryption, figures=figures)
