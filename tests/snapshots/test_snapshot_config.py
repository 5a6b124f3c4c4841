"""Configuration, keys and the keygen command of the snapshot store (no storage beyond tmp)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from exchange_store.cli.main import main
from exchange_store.errors import ConfigurationError
from exchange_store.snapshots import SnapshotStore, SnapshotStoreConfig, generate_key_file
from exchange_store.snapshots.keys import KEY_ENV_VAR, load_key_file


def _props(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"snapshot.base-directories": str(tmp_path / "snaps"), **extra}


def test_defaults_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = SnapshotStoreConfig.from_properties(
        {
            "snapshot.base-directories": "var/snapshots",
            "snapshot.encryption-key-file": "var/snapshot.key",
        }
    )
    assert config.base_directories == (str(tmp_path / "var" / "snapshots"),)
    assert config.encryption_key_file == str(tmp_path / "var" / "snapshot.key")
    assert (config.timeout, config.max_concurrent, config.retained_count) == (60.0, 1, 5)
    assert (config.codec, config.encryption_enabled, config.block_size) == ("LZ4", True, 1 << 20)
    assert config.lease_ttl == 60.0 and config.filesystem_name is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"snapshot.timout": "1m"},
            r"unknown key 'snapshot.timout'.*did you mean 'snapshot.timeout'",
        ),
        ({"snapshot.retained-count": "0"}, r"snapshot.retained-count='0': must be >= 1"),
        ({"snapshot.compression-codec": "GZIP"}, r"LZ4 \| NONE \| ZSTD"),
        ({"snapshot.timeout": "soon"}, r"snapshot.timeout='soon'"),
        ({"snapshot-filesystem-type": "../x"}, r"snapshot-filesystem-type='../x'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SnapshotStoreConfig.from_properties(
            _props(tmp_path, **extra), "etc/snapshot-store.properties"
        )


def test_missing_base_directories() -> None:
    with pytest.raises(
        ConfigurationError, match=r"missing required key 'snapshot\.base-directories'"
    ):
        SnapshotStoreConfig.from_properties({})


def test_encryption_without_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        SnapshotStore.from_properties(_props(tmp_path), environ={})
    text = str(info.value)
    assert "snapshot.encryption-key-file" in text and KEY_ENV_VAR in text
    assert "snapshot.encryption-enabled" in text


def test_key_file_missing_or_wrong_size_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigurationError, match=f"{missing}.*not found"):
        SnapshotStore.from_properties(
            _props(tmp_path, **{"snapshot.encryption-key-file": str(missing)}), environ={}
        )
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    with pytest.raises(ConfigurationError, match=f"{short}.*not a snapshot encryption key"):
        load_key_file(short)
    raw = tmp_path / "raw.key"
    raw.write_bytes(bytes(range(32)))
    assert load_key_file(raw) == bytes(range(32))


def test_key_sources(tmp_path: Path) -> None:
    key_file = generate_key_file(tmp_path / "keys" / "snapshot.key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_text().strip()) == 64
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        generate_key_file(key_file)
    props = _props(tmp_path, **{"snapshot.encryption-key-file": str(key_file)})
    with SnapshotStore.from_properties(props, environ={}) as from_file:
        p = from_file.begin("job", ["t"])
        from_file.write_task_state(p.task_handle("t"), b"state")
        p.complete()
    env = {KEY_ENV_VAR: key_file.read_text().strip()}
    with SnapshotStore.from_properties(_props(tmp_path), environ=env) as from_env:
        assert from_env.read_task_state_bytes(from_env.latest("job"), "t") == b"state"  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=f"{KEY_ENV_VAR}: expected 64 hex"):
        SnapshotStore.from_properties(_props(tmp_path), environ={KEY_ENV_VAR: "12"})


def test_handle_is_picklable_and_hides_the_key(tmp_path: Path) -> None:
    import pickle

    key = bytes(range(100, 132))
    with SnapshotStore.from_properties(_props(tmp_path), key=key) as store:
        handle = store.begin("job", ["t"]).task_handle("t")
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert key.hex() not in repr(handle) and repr(key) not in repr(handle)
    assert len(pickle.dumps(handle)) < 1024


def test_from_etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    etc = tmp_path / "etc"
    etc.mkdir()
    shipped = Path(__file__).resolve().parents[2] / "etc" / "snapshot-store.properties"
    (etc / "snapshot-store.properties").write_text(shipped.read_text())
    with pytest.raises(ConfigurationError, match=r"snapshot\.key.*not found"):
        SnapshotStore.from_etc(etc)
    assert main(["keygen", "var/snapshot.key"]) == 0
    key_text = (tmp_path / "var" / "snapshot.key").read_text()
    assert main(["keygen", "var/snapshot.key"]) == 2  # never overwritten
    assert main(["keygen", "--exist-ok", "var/snapshot.key"]) == 0
    assert (tmp_path / "var" / "snapshot.key").read_text() == key_text
    (tmp_path / "bad.key").write_text("nope")
    assert main(["keygen", "--exist-ok", "bad.key"]) == 2  # exists but is not a key
    with SnapshotStore.from_etc(etc) as store:
        assert store.encrypted
        assert store.config.base_directories == (str(tmp_path / "var" / "snapshots"),)
        p = store.begin("job", ["t"])
        store.write_task_state(p.task_handle("t"), b"x")
        assert p.complete().path.startswith(str(tmp_path / "var" / "snapshots"))
    # A named filesystem client must exist.
    (etc / "snapshot-store.properties").write_text(
        "snapshot.base-directories=var/snapshots\nsnapshot-filesystem-type=shared\n"
        "snapshot.encryption-enabled=false\n"
    )
    with pytest.raises(
        ConfigurationError, match=r"shared.properties: filesystem client file not found"
    ):
        SnapshotStore.from_etc(etc)
    (etc / "filesystem").mkdir()
    (etc / "filesystem" / "shared.properties").write_text("fs.client.type=local\n")
    with SnapshotStore.from_etc(etc) as store:
        assert not store.encrypted
    (etc / "snapshot-store.properties").unlink()
    with pytest.raises(ConfigurationError, match=r"snapshot-store\.properties"):
        SnapshotStore.from_etc(etc)
