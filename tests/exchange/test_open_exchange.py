"""open_exchange (a coordinator that restarts), sink_lost and LostInputError (lineage)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import exchange_store as xs
from exchange_store.errors import IntegrityError, InvalidArgumentError, LostInputError


@pytest.fixture
def props(tmp_path: Path) -> dict[str, str]:
    return {
        "exchange.base-directories": f"{tmp_path / 'a'},{tmp_path / 'b'}",
        "exchange.encryption-key-file": str(xs_key(tmp_path)),
    }


def xs_key(tmp_path: Path) -> Path:
    from exchange_store.crypto.keyfile import generate_key_file

    path = tmp_path / "exchange.key"
    if not path.exists():
        generate_key_file(path)
    return path


def _write(manager, exchange, sink, attempt: int, tp: int, report: bool = True):
    instance = exchange.instantiate_sink(sink, attempt)
    with manager.create_sink(instance) as out:
        for p in range(3):
            out.add(p, b"tp%d-p%d" % (tp, p))
    receipt = out.finish()
    if report:
        exchange.sink_finished(sink, attempt, receipt)
    return receipt


def _read(manager, exchange) -> list[bytes]:
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    try:
        return sorted(source)
    finally:
        source.close()


def _files(tmp_path: Path) -> list[Path]:
    return [p for d in ("a", "b") for p in (tmp_path / d).rglob("*") if p.is_file()]


def test_reopen_keeps_finished_sinks_and_selected_attempts(tmp_path, props) -> None:
    ctx = xs.ExchangeContext("q1", "stage-1")
    first = xs.ExchangeManager.from_properties(props)
    exchange = first.create_exchange(ctx, 3, preserve_order=True)
    sinks = [exchange.add_sink(t) for t in range(4)]
    exchange.no_more_sinks()
    _write(first, exchange, sinks[0], 1, 0)  # attempt 1 reported first ...
    _write(first, exchange, sinks[0], 0, 0)  # ... attempt 0 committed too (speculative)
    _write(first, exchange, sinks[1], 0, 1)
    _write(first, exchange, sinks[2], 2, 2, report=False)  # committed, never reported
    exchange.instantiate_sink(sinks[3], 5)  # started, never committed
    exchange._lease.close()  # the coordinator dies: no close(), its lease stops

    second = xs.ExchangeManager.from_properties(props)
    reopened = second.open_exchange(ctx)
    assert reopened.output_partition_count == 3 and reopened.preserve_order
    assert reopened.selected_attempts() == {0: 0, 1: 0, 2: 2}
    with pytest.raises(InvalidArgumentError, match="already open"):
        second.open_exchange(ctx)
    with pytest.raises(InvalidArgumentError, match="already exists"):
        xs.ExchangeManager.from_properties(props).create_exchange(ctx, 3)
    handles = [reopened.add_sink(t) for t in range(4)]
    reopened.no_more_sinks()
    _write(second, reopened, handles[3], 6, 3)
    expected = sorted(b"tp%d-p%d" % (t, p) for t in range(4) for p in range(3))
    assert _read(second, reopened) == expected

    # Finished, recorded, reopened again: exactly the same selection, reads the same.
    reopened._lease.close()
    third = xs.ExchangeManager.from_properties(props)
    again = third.open_exchange(ctx)
    assert again.selected_attempts() == {0: 0, 1: 0, 2: 2, 3: 6}
    assert again.attempts_used()[3] == 6
    assert _read(third, again) == expected
    again.close()
    assert _files(tmp_path) == []


def test_recorded_selection_wins_over_the_lowest_attempt(tmp_path, props) -> None:
    ctx = xs.ExchangeContext("q2", "e")
    first = xs.ExchangeManager.from_properties(props)
    exchange = first.create_exchange(ctx, 3)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    _write(first, exchange, sink, 4, 0)
    _write(first, exchange, sink, 1, 0, report=False)
    exchange.all_required_sinks_finished()
    exchange._lease.close()
    reopened = xs.ExchangeManager.from_properties(props).open_exchange(ctx)
    assert reopened.selected_attempts() == {0: 4}
    reopened.close()


def test_damaged_commit_is_removed_and_its_task_is_not_finished(tmp_path, props) -> None:
    ctx = xs.ExchangeContext("q3", "e")
    first = xs.ExchangeManager.from_properties(props)
    exchange = first.create_exchange(ctx, 3)
    sinks = [exchange.add_sink(t) for t in range(2)]
    exchange.no_more_sinks()
    for t, sink in enumerate(sinks):
        _write(first, exchange, sink, 0, t)
    exchange._lease.close()
    manifest = next(p for p in _files(tmp_path) if p.name == "_manifest" and "-1/" in str(p))
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x01
    manifest.write_bytes(bytes(data))
    reopened = xs.ExchangeManager.from_properties(props).open_exchange(ctx)
    assert reopened.selected_attempts() == {0: 0}
    assert not manifest.exists()
    reopened.close()


def test_a_damaged_record_is_rebuilt_when_the_shape_is_given(tmp_path, props) -> None:
    ctx = xs.ExchangeContext("q4", "e")
    first = xs.ExchangeManager.from_properties(props)
    exchange = first.create_exchange(ctx, 3)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    _write(first, exchange, sink, 0, 0)
    exchange._lease.close()
    record = next(p for p in _files(tmp_path) if p.name == "_exchange")
    record.write_bytes(record.read_bytes()[:-3])
    second = xs.ExchangeManager.from_properties(props)
    with pytest.raises(IntegrityError, match="_exchange"):
        second.open_exchange(ctx)
    reopened = second.open_exchange(ctx, output_partition_count=3)
    assert reopened.selected_attempts() == {0: 0}
    reopened.close()


def test_without_configuration_a_per_user_key_lets_a_restart_reopen(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    props = {"exchange.base-directories": str(tmp_path / "a")}
    ctx = xs.ExchangeContext("q8", "e")
    first = xs.ExchangeManager.from_properties(props)
    assert first.can_reopen
    key_file = tmp_path / "data" / "exchange-store" / "exchange.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    exchange = first.create_exchange(ctx, 3)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    _write(first, exchange, sink, 0, 0)
    exchange._lease.close()
    reopened = xs.ExchangeManager.from_properties(props).open_exchange(ctx)
    assert reopened.selected_attempts() == {0: 0}
    reopened.close()


def test_concurrent_creators_of_the_default_key_agree(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from exchange_store.crypto.keyfile import ensure_key_file, load_key_file

    path = tmp_path / "k" / "exchange.key"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: load_key_file(ensure_key_file(path), "k"), range(32)))
    keys = {load_key_file(path, "k") for _ in range(3)}
    assert len(keys) == 1
    assert [p.name for p in path.parent.iterdir()] == ["exchange.key"]


def test_random_query_keys_cannot_be_reopened_elsewhere(tmp_path) -> None:
    props = {"exchange.base-directories": str(tmp_path / "a"), "exchange.encryption-key-file": ""}
    ctx = xs.ExchangeContext("q5", "e")
    first = xs.ExchangeManager.from_properties(props)
    assert not first.can_reopen
    exchange = first.create_exchange(ctx, 2)
    with pytest.raises(IntegrityError, match=r"exchange\.encryption-key-file"):
        xs.ExchangeManager.from_properties(props).open_exchange(ctx)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        first.open_exchange(xs.ExchangeContext("q5", "other"))
    exchange.close()
    plain = {**props, "exchange.encryption-enabled": "false"}
    manager = xs.ExchangeManager.from_properties(plain)
    assert manager.can_reopen and manager.durable_query_key("q5") is None
    exchange = manager.create_exchange(ctx, 2)
    exchange._lease.close()
    reopened = xs.ExchangeManager.from_properties(plain).open_exchange(ctx)
    assert reopened.output_partition_count == 2
    reopened.close()


def test_master_key_from_environment_derives_per_query_keys(tmp_path, monkeypatch) -> None:
    props = {"exchange.base-directories": str(tmp_path / "a")}
    monkeypatch.setenv("EXCHANGE_STORE_EXCHANGE_KEY", os.urandom(32).hex())
    manager = xs.ExchangeManager.from_properties(props)
    assert manager.can_reopen
    assert manager.durable_query_key("q1") == manager.durable_query_key("q1")
    assert manager.durable_query_key("q1") != manager.durable_query_key("q2")
    monkeypatch.setenv("EXCHANGE_STORE_EXCHANGE_KEY", "abc")
    with pytest.raises(xs.ConfigurationError, match="EXCHANGE_STORE_EXCHANGE_KEY"):
        xs.ExchangeManager.from_properties(props)
    monkeypatch.delenv("EXCHANGE_STORE_EXCHANGE_KEY")
    missing = {**props, "exchange.encryption-key-file": str(tmp_path / "nope.key")}
    with pytest.raises(xs.ConfigurationError, match=r"nope\.key.*keygen"):
        xs.ExchangeManager.from_properties(missing)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_lost_committed_data_names_its_producer_and_sink_lost_reruns_it(
    tmp_path, props, damage
) -> None:
    ctx = xs.ExchangeContext("q6", "e")
    manager = xs.ExchangeManager.from_properties(props)
    exchange = manager.create_exchange(ctx, 3)
    sinks = [exchange.add_sink(t) for t in range(3)]
    exchange.no_more_sinks()
    for t, sink in enumerate(sinks):
        _write(manager, exchange, sink, 0, t)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    victim = next(p for p in _files(tmp_path) if p.suffix == ".xsf" and "-1/0/" in str(p))
    if damage == "flip":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x80
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    else:
        victim.unlink()
    source = manager.create_source(handles)
    source.no_more_source_handles()
    with pytest.raises(LostInputError) as info:
        list(source)
    source.close()
    assert isinstance(info.value, IntegrityError)
    assert info.value.lost == (("q6", "e", 1, 0),)
    assert "task partition 1 attempt 0" in str(info.value)

    assert exchange.sink_lost(sinks[1], 0) is True
    assert exchange.sink_lost(sinks[1], 0) is False  # a second reader of the same loss
    assert exchange.selected_attempts() == {0: 0, 2: 0}
    with pytest.raises(xs.ExchangeStateError):
        exchange.get_source_handles()
    _write(manager, exchange, sinks[1], 1, 1)
    expected = sorted(b"tp%d-p%d" % (t, p) for t in range(3) for p in range(3))
    assert _read(manager, exchange) == expected
    exchange.close()
    assert _files(tmp_path) == []


@pytest.mark.parametrize("fsync", [False, True])
def test_data_files_are_fsynced_only_when_configured(tmp_path, monkeypatch, fsync) -> None:
    import exchange_store.filesystems.local as local

    synced: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(local.os, "fsync", counting)
    props = {
        "exchange.base-directories": str(tmp_path / "a"),
        "exchange.sink-fsync-data-files": str(fsync).lower(),
    }
    manager = xs.ExchangeManager.from_properties(props)
    exchange = manager.create_exchange(xs.ExchangeContext("q7", "e"), 3)
    sink = exchange.add_sink(0)
    exchange.no_more_sinks()
    synced.clear()
    _write(manager, exchange, sink, 0, 0)
    data = [p for p in synced if ".xsf" in p]
    assert bool(data) is fsync
    assert any("_manifest" in p for p in synced)  # the commit is always durable
    assert _read(manager, exchange) == sorted(b"tp0-p%d" % p for p in range(3))
    exchange.close()
