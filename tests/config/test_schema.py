"""Typed keys: every error path names the file, the line, the key and what is allowed."""

from __future__ import annotations

import pytest

from exchange_store.config import Key, Schema, env_name, load_etc, parse_properties
from exchange_store.errors import ConfigurationError

SCHEMA = Schema(
    "test.properties",
    [
        Key("exchange.base-directories", "list", required=True),
        Key("exchange.sink-max-file-size", "size", default=1 << 30, minimum=1 << 20),
        Key("exchange.compression-codec", "enum", default="LZ4", choices=("NONE", "LZ4", "ZSTD")),
        Key("exchange.encryption-enabled", "bool", default=True),
        Key("retry-initial-delay", "duration", default=10.0, aliases=("task-initial-delay",)),
        Key("retry-delay-scale-factor", "float", default=2.0, minimum=1.0),
        Key("task-retry-attempts-per-task", "int", default=4, minimum=0),
        Key("s3.aws-secret-key", "string", secret=True),
    ],
    prefixes=("fsspec.option.",),
)


def parse(text: str) -> dict[str, object]:
    pf = parse_properties(text, "etc/test.properties")
    return SCHEMA.parse(pf.values, pf.path, pf.lines)


def test_defaults_and_types() -> None:
    out = parse("exchange.base-directories=/a, s3://b/c ,\nexchange.compression-codec=zstd")
    assert out["exchange.base-directories"] == ("/a", "s3://b/c")
    assert out["exchange.compression-codec"] == "ZSTD"
    assert out["exchange.sink-max-file-size"] == 1 << 30
    assert out["exchange.encryption-enabled"] is True
    assert out["s3.aws-secret-key"] is None


def test_alias_resolves_to_main_key() -> None:
    out = parse("exchange.base-directories=/a\ntask-initial-delay=250ms")
    assert out["retry-initial-delay"] == pytest.approx(0.25)


def test_prefixed_keys_pass_through() -> None:
    out = parse("exchange.base-directories=/a\nfsspec.option.anon=true")
    assert out["fsspec.option.anon"] == "true"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "exchange.base-directories=/a\nexchange.sink-max-filesize=1GB",
            r"etc/test\.properties:2: unknown key 'exchange\.sink-max-filesize' "
            r"in test\.properties \(did you mean 'exchange\.sink-max-file-size'\?\)",
        ),
        ("exchange.base-directories=/a\nzzz=1", r"etc/test\.properties:2: unknown key 'zzz'"),
        (
            "exchange.base-directories=/a\nexchange.sink-max-file-size=1gb",
            r":2: exchange\.sink-max-file-size='1gb': unknown unit 'gb' \(did you mean 'GB'\?\)",
        ),
        (
            "exchange.base-directories=/a\nexchange.sink-max-file-size=1kB",
            r":2: exchange\.sink-max-file-size='1kB': must be >= 1MB; allowed: a data size",
        ),
        (
            "exchange.base-directories=/a\nexchange.compression-codec=GZIP",
            r":2: exchange\.compression-codec='GZIP': expected one of NONE \| LZ4 \| ZSTD",
        ),
        (
            "exchange.base-directories=/a\nexchange.encryption-enabled=yes",
            r":2: exchange\.encryption-enabled='yes': expected true or false",
        ),
        (
            "exchange.base-directories=/a\ntask-retry-attempts-per-task=four",
            r":2: task-retry-attempts-per-task='four': expected an integer",
        ),
        (
            "exchange.base-directories=/a\nretry-delay-scale-factor=0.5",
            r":2: retry-delay-scale-factor='0\.5': must be >= 1",
        ),
        (
            "exchange.base-directories=/a\nretry-initial-delay=10",
            r":2: retry-initial-delay='10': expected a number and a unit",
        ),
        (
            "exchange.compression-codec=LZ4",
            r"etc/test\.properties: missing required key 'exchange\.base-directories'",
        ),
        (
            "exchange.base-directories=/a\nretry-initial-delay=1s\ntask-initial-delay=2s",
            r":3: 'task-initial-delay' and 'retry-initial-delay' set the same key",
        ),
    ],
)
def test_errors_name_file_line_and_key(text: str, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern) as info:
        parse(text)
    assert "\n" not in str(info.value)  # one clear line


def test_secret_values_are_not_shown() -> None:
    schema = Schema("s", [Key("s3.aws-secret-key", "int", secret=True)])
    with pytest.raises(ConfigurationError) as info:
        schema.parse({"s3.aws-secret-key": "hunter2"}, "etc/filesystem/s3.properties")
    assert "hunter2" not in str(info.value)
    assert "<secret>" in str(info.value)


def test_load_etc_missing_directory(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope: configuration directory not found"):
        load_etc(tmp_path / "nope")


def test_load_etc_reads_files_and_clients(tmp_path) -> None:
    (tmp_path / "filesystem").mkdir()
    (tmp_path / "exchange-manager.properties").write_text("exchange.base-directories=/x\n")
    (tmp_path / "filesystem" / "exchange.properties").write_text("fs.client.type=local\n")
    (tmp_path / "filesystem" / "s3.properties.example").write_text("fs.client.type=s3\n")
    etc = load_etc(tmp_path, environ={})
    assert etc.exchange_manager is not None
    assert etc.exchange_manager.values == {"exchange.base-directories": "/x"}
    assert list(etc.filesystems) == ["exchange"]
    assert etc.snapshot_store is None and etc.scheduler is None


def test_missing_client_file_names_it_and_who_asked(tmp_path) -> None:
    (tmp_path / "exchange-manager.properties").write_text("exchange-filesystem-type=s3\n")
    etc = load_etc(tmp_path, environ={})
    with pytest.raises(ConfigurationError) as info:
        etc.filesystem("s3", wanted_by=etc.exchange_manager, key="exchange-filesystem-type")
    message = str(info.value)
    assert "filesystem/s3.properties: filesystem client file not found" in message
    assert "exchange-filesystem-type=s3 at" in message
    assert "exchange-manager.properties:1" in message


def test_environment_overrides_file(tmp_path) -> None:
    (tmp_path / "exchange-manager.properties").write_text(
        "exchange.base-directories=/x\nexchange.compression-codec=LZ4\n"
    )
    environ = {
        env_name("exchange.compression-codec"): "ZSTD",
        env_name("exchange.sink-max-file-size"): "64MB",
        "UNRELATED": "1",
    }
    etc = load_etc(tmp_path, environ=environ)
    assert etc.exchange_manager is not None
    assert etc.exchange_manager.values["exchange.compression-codec"] == "ZSTD"
    assert etc.exchange_manager.values["exchange.sink-max-file-size"] == "64MB"
    assert etc.exchange_manager.where("exchange.compression-codec") == (
        "environment variable EXCHANGE_STORE__EXCHANGE__COMPRESSION_CODEC"
    )


def test_env_name() -> None:
    assert env_name("exchange.base-directories") == "EXCHANGE_STORE__EXCHANGE__BASE_DIRECTORIES"
