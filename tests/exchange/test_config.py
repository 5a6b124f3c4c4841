"""exchange-manager.properties: keys, defaults, errors naming file, key and allowed values."""

from __future__ import annotations

import pytest

from exchange_store.errors import ConfigurationError
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.exchange.handles import ExchangeContext
from exchange_store.exchange.manager import ExchangeManager
from exchange_store.filesystems.local import LocalFileSystemClient


def test_defaults(tmp_path):
    cfg = ExchangeManagerConfig.from_properties({"exchange.base-directories": str(tmp_path)})
    assert cfg.base_directories == (str(tmp_path),)
    assert cfg.codec == "LZ4" and cfg.encryption_enabled is True
    assert cfg.sink_max_file_size == 1 << 30
    assert cfg.max_page_storage_size == 16 << 20
    assert cfg.source_handle_target_data_size == 256 << 20
    assert cfg.max_output_partition_count >= 1000
    assert cfg.deduplication_buffer_size == 32 << 20
    assert cfg.sink_max_buffer_size == 64 << 20
    assert cfg.block_size == 1 << 20 and cfg.lease_ttl == 60.0


def test_relative_base_directory_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = ExchangeManagerConfig.from_properties({"exchange.base-directories": "var/x, var/y"})
    assert cfg.base_directories == (str(tmp_path / "var/x"), str(tmp_path / "var/y"))


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"exchange.compression-enabled": "true"}, "LZ4"),
        ({"exchange.compression-enabled": "false"}, "NONE"),
        ({"exchange.compression-codec": "zstd"}, "ZSTD"),
        ({"exchange.compression-codec": "NONE", "exchange.compression-enabled": "false"}, "NONE"),
        ({}, "LZ4"),
    ],
)
def test_compression_keys(tmp_path, props, expected):
    props = {"exchange.base-directories": str(tmp_path), **props}
    assert ExchangeManagerConfig.from_properties(props).codec == expected


@pytest.mark.parametrize(
    ("props", "words"),
    [
        ({"exchange.compresion-codec": "LZ4"}, ["exchange.compresion-codec", "did you mean"]),
        (
            {"exchange.compression-codec": "GZIP"},
            ["exchange.compression-codec", "LZ4 | NONE | ZSTD"],
        ),
        (
            {"exchange.compression-codec": "ZSTD", "exchange.compression-enabled": "false"},
            ["exchange.compression-enabled", "conflicts", "exchange.compression-codec"],
        ),
        ({"exchange.compression-level": "5"}, ["exchange.compression-level", "ZSTD"]),
        (
            {"exchange.compression-codec": "ZSTD", "exchange.compression-level": "0"},
            ["exchange.compression-level"],
        ),
        ({"exchange.sink-max-file-size": "lots"}, ["exchange.sink-max-file-size", "data size"]),
        ({"exchange.encryption-enabled": "yes"}, ["exchange.encryption-enabled", "true | false"]),
        ({"exchange-manager.name": "hive"}, ["exchange-manager.name", "filesystem"]),
        ({"exchange.max-output-partition-count": "0"}, ["exchange.max-output-partition-count"]),
        ({"exchange.lease-ttl": "10"}, ["exchange.lease-ttl"]),
    ],
)
def test_errors_name_source_key_and_allowed(tmp_path, props, words):
    props = {"exchange.base-directories": str(tmp_path), **props}
    with pytest.raises(ConfigurationError) as err:
        ExchangeManagerConfig.from_properties(props, "etc/exchange-manager.properties")
    message = str(err.value)
    assert "etc/exchange-manager.properties" in message
    for word in words:
        assert word in message


def test_missing_base_directories():
    with pytest.raises(ConfigurationError, match=r"exchange\.base-directories"):
        ExchangeManager.from_properties({})


def test_remote_base_without_client_uses_the_scheme_defaults():
    # As the snapshot store and the admin tools: the base directories' scheme decides.
    manager = ExchangeManager.from_properties({"exchange.base-directories": "s3://bucket/x"})
    assert manager.client.scheme == "s3"
    manager.close()
    with pytest.raises(
        ConfigurationError, match=r"exchange-filesystem-type=nope.*etc/filesystem/nope\.properties"
    ):
        ExchangeManager.from_properties(
            {"exchange.base-directories": "/tmp/x", "exchange-filesystem-type": "nope"}
        )


def _write_etc(root, manager_text, filesystems=None):
    root.mkdir()
    (root / "exchange-manager.properties").write_text(manager_text)
    if filesystems:
        (root / "filesystem").mkdir()
        for name, text in filesystems.items():
            (root / "filesystem" / f"{name}.properties").write_text(text)
    return root


def test_from_etc_local(tmp_path):
    base = tmp_path / "spool"
    etc = _write_etc(
        tmp_path / "etc",
        "exchange-manager.name=filesystem\n"
        "exchange-filesystem-type=exchange\n"
        f"exchange.base-directories={base}\n"
        "exchange.compression-codec=ZSTD\n",
        {"exchange": "fs.client.type=local\n"},
    )
    manager = ExchangeManager.from_etc(etc)
    assert isinstance(manager.client, LocalFileSystemClient)
    assert manager.config.codec == "ZSTD"
    exchange = manager.create_exchange(ExchangeContext("q", "e"), 2)
    assert (base / "q" / "e" / "_lease").is_file()
    exchange.close()
    manager.close()


def test_from_etc_without_client_file_uses_local(tmp_path):
    etc = _write_etc(tmp_path / "etc", f"exchange.base-directories={tmp_path / 'spool'}\n")
    assert isinstance(ExchangeManager.from_etc(etc).client, LocalFileSystemClient)


def test_from_etc_errors_name_the_file_and_line(tmp_path):
    etc = _write_etc(
        tmp_path / "etc",
        f"exchange.base-directories={tmp_path}\n\nexchange.sink-max-file-size=huge\n",
    )
    with pytest.raises(ConfigurationError) as err:
        ExchangeManager.from_etc(etc)
    assert "exchange-manager.properties:3" in str(err.value)
    assert "exchange.sink-max-file-size" in str(err.value)

    etc2 = _write_etc(
        tmp_path / "etc2",
        f"exchange.base-directories={tmp_path}\nexchange-filesystem-type=shared\n",
    )
    with pytest.raises(ConfigurationError, match=r"shared\.properties"):
        ExchangeManager.from_etc(etc2)
    with pytest.raises(ConfigurationError, match="not found"):
        ExchangeManager.from_etc(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"exchange-manager\.properties"):
        ExchangeManager.from_etc(tmp_path / "empty")


@pytest.mark.s3
def test_from_etc_s3(tmp_path, s3_bucket, s3_properties):
    text = "".join(f"{k}={v}\n" for k, v in s3_properties.items())
    etc = _write_etc(
        tmp_path / "etc",
        f"exchange-filesystem-type=spool\nexchange.base-directories=s3://{s3_bucket}/x\n",
        {"spool": text},
    )
    manager = ExchangeManager.from_etc(etc)
    exchange = manager.create_exchange(ExchangeContext("q", "e"), 2)
    assert manager.client.exists(f"s3://{s3_bucket}/x/q/e/_lease")
    exchange.close()
    assert list(manager.client.walk(f"s3://{s3_bucket}/x")) == []
    manager.close()
