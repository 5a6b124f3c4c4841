"""Trino's and openLooKeng's own exchange configuration files, unchanged, on real servers.

Each file is written as the engine's documentation shows it (no ``etc/filesystem`` file for
Trino: its ``exchange.s3.*`` / ``exchange.gcs.*`` / ``exchange.azure.*`` keys build the client)
and records go through an exchange and back: on moto (S3), Azurite (Azure Blob) and the GCS
emulator. HDFS loads and fails only for the missing cluster.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import exchange_store as xs
from exchange_store.errors import ConfigurationError

TRINO_COMMON = """\
exchange.sink-buffer-pool-min-size=10
exchange.sink-buffers-per-partition=2
exchange.sink-max-file-size=1GB
exchange.source-concurrent-readers=4
exchange.source-max-files-per-reader=25
exchange.max-output-partition-count=50
exchange.max-page-storage-size=16MB
exchange.file-listing-parallelism=50
exchange.encryption-enabled=true
"""


def _etc(tmp_path: Path, manager: str, filesystems: dict[str, str] | None = None) -> Path:
    etc = tmp_path / "etc"
    (etc / "filesystem").mkdir(parents=True)
    (etc / "exchange-manager.properties").write_text(manager)
    for name, text in (filesystems or {}).items():
        (etc / "filesystem" / f"{name}.properties").write_text(text)
    return etc


def round_trip(manager: xs.ExchangeManager, query: str = "q1") -> None:
    exchange = manager.create_exchange(xs.ExchangeContext(query, "stage-0"), 3)
    sinks = [exchange.add_sink(t) for t in range(2)]
    exchange.no_more_sinks()
    expected = []
    for t, handle in enumerate(sinks):
        with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
            for i in range(50):
                record = b"%d-%d-" % (t, i) * 30
                sink.add(i % 3, record)
                expected.append(record)
        exchange.sink_finished(handle, 0, sink.finish())
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    try:
        assert sorted(source) == sorted(expected)
    finally:
        source.close()
    exchange.close()
    assert [i.path for b in manager.base_directories for i in manager.client.walk(b)] == []


@pytest.mark.s3
def test_trino_s3_file_unchanged(tmp_path, moto_server, s3_bucket, caplog) -> None:
    import boto3

    text = f"""\
exchange-manager.name=filesystem
exchange.base-directories=s3://{s3_bucket}/spool
exchange.s3.region=us-east-1
exchange.s3.endpoint={moto_server}
exchange.s3.aws-access-key=testing
exchange.s3.aws-secret-key=testing
exchange.s3.path-style-access=true
exchange.s3.max-error-retries=3
exchange.s3.upload.part-size=5MB
exchange.s3.storage-class=STANDARD
exchange.s3.retry-mode=ADAPTIVE
exchange.s3.sse.type=S3
exchange.s3.async-client-concurrency=20
exchange.s3.async-client-max-pending-connection-acquires=100
exchange.s3.async-client-connection-acquisition-timeout=1m
exchange.compression-enabled=true
{TRINO_COMMON}"""
    with caplog.at_level(logging.INFO, logger="exchange_store"):
        manager = xs.ExchangeManager.from_etc(_etc(tmp_path, text))
    assert "exchange.file-listing-parallelism accepted for compatibility" in caplog.text
    assert manager.client.object_args == {
        "StorageClass": "STANDARD",
        "ServerSideEncryption": "AES256",
    }
    assert manager.config.source_concurrent_readers == 4
    assert manager.config.max_output_partition_count == 50
    exchange = manager.create_exchange(xs.ExchangeContext("q0", "e"), 1)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert s3.head_object(Bucket=s3_bucket, Key=key)["ServerSideEncryption"] == "AES256"
    exchange.close()
    round_trip(manager)


def test_trino_s3_keys_against_a_local_directory_are_refused(tmp_path) -> None:
    text = f"exchange.base-directories={tmp_path}/x\nexchange.s3.region=us-east-1\n"
    with pytest.raises(ConfigurationError, match=r"exchange\.s3\.region.*local|file"):
        xs.ExchangeManager.from_etc(_etc(tmp_path, text))


def test_azure_keys_on_s3_directories_are_refused(tmp_path) -> None:
    text = "exchange.base-directories=s3://b/x\nexchange.azure.connection-string=x\n"
    with pytest.raises(ConfigurationError, match=r"exchange\.azure\.connection-string"):
        xs.ExchangeManager.from_etc(_etc(tmp_path, text))


def test_trino_azure_file_unchanged(tmp_path, azurite, azure_container) -> None:
    text = f"""\
exchange-manager.name=filesystem
exchange.base-directories=abfs://{azure_container}@devstoreaccount1.dfs.core.windows.net/spool
exchange.azure.connection-string={azurite}
exchange.azure.block-size=4MB
exchange.azure.max-error-retries=3
{TRINO_COMMON}"""
    manager = xs.ExchangeManager.from_etc(_etc(tmp_path, text))
    assert manager.client.supports_atomic_create
    round_trip(manager)


def test_azure_exclusive_create_is_atomic_on_azurite(azurite, azure_container) -> None:
    from exchange_store.filesystems.fsspec import ObjectStoreFsspecFileSystemClient

    root = f"abfs://{azure_container}/x"
    client = ObjectStoreFsspecFileSystemClient(
        [root], storage_options={"connection_string": azurite}
    )
    client.write_exclusive(f"{root}/m", b"one")
    with pytest.raises(xs.errors.CommitConflictError):
        client.write_exclusive(f"{root}/m", b"two")
    assert client.read_file(f"{root}/m") == b"one"
    stream = client.create(f"{root}/aborted")
    stream.write(b"x" * 100)
    stream.abort()
    assert not client.exists(f"{root}/aborted")


def test_trino_gcs_file_unchanged(tmp_path, gcs_bucket) -> None:
    text = f"""\
exchange-manager.name=filesystem
exchange.base-directories=gs://{gcs_bucket}/spool
{TRINO_COMMON}"""
    manager = xs.ExchangeManager.from_etc(_etc(tmp_path, text))
    round_trip(manager)


def test_trino_gcs_key_file_must_exist(tmp_path) -> None:
    text = f"""\
exchange.base-directories=gs://bucket/spool
exchange.gcs.json-key-file-path={tmp_path}/missing.json
"""
    with pytest.raises(ConfigurationError, match=r"missing\.json: file not found"):
        xs.ExchangeManager.from_etc(_etc(tmp_path, text))


def test_gcs_with_an_fsspec_client_file(tmp_path, gcs_bucket) -> None:
    manager_text = f"""\
exchange.base-directories=gs://{gcs_bucket}/spool
exchange-filesystem-type=gcs
"""
    client = "fs.client.type=fsspec\nfsspec.option.token=anon\nfsspec.option.project=test\n"
    manager = xs.ExchangeManager.from_etc(_etc(tmp_path, manager_text, {"gcs": client}))
    round_trip(manager)


def test_trino_hdfs_plugin_file_loads_and_fails_only_for_the_cluster(tmp_path) -> None:
    site = tmp_path / "core-site.xml"
    site.write_text(
        "<configuration><property><name>fs.defaultFS</name>"
        "<value>hdfs://namenode.invalid:8020</value></property></configuration>"
    )
    text = f"""\
exchange-manager.name=hdfs
exchange.base-directories=hdfs://namenode.invalid:8020/exchange
hdfs.config.resources={site}
exchange.hdfs.block-size=4MB
exchange.hdfs.skip-directory-scheme-validation=false
{TRINO_COMMON}"""
    manager = xs.ExchangeManager.from_etc(_etc(tmp_path, text))
    assert type(manager.client).__name__ == "HdfsFileSystemClient"
    with pytest.raises(xs.ExchangeStoreError, match=r"(?i)hadoop|hdfs|libhdfs|namenode"):
        manager.create_exchange(xs.ExchangeContext("q1", "e"), 2)


OPENLOOKENG_MANAGER = """\
exchange-manager.name=filesystem
exchange-filesystem-type=exchange
exchange.base-directories={base}
exchange.compression-enabled=true
exchange.max-page-storage-size=16MB
exchange.sink-buffer-pool-min-size=10
exchange.sink-buffers-per-partition=2
exchange.sink-max-file-size=1GB
exchange.source-concurrent-readers=4
exchange.max-output-partition-count=50
exchange.file-listing-parallelism=50
"""


def test_openlookeng_local_profile_unchanged(tmp_path) -> None:
    etc = _etc(
        tmp_path,
        OPENLOOKENG_MANAGER.format(base=tmp_path / "exchange"),
        {"exchange": "fs.client.type=local\n"},
    )
    round_trip(xs.ExchangeManager.from_etc(etc))


def test_openlookeng_hdfs_profile_unchanged(tmp_path) -> None:
    site = tmp_path / "hdfs-site.xml"
    site.write_text("<configuration></configuration>")
    profile = f"""\
fs.client.type=hdfs
hdfs.config.resources={site}
hdfs.authentication.type=NONE
fs.hdfs.impl.disable.cache=true
"""
    etc = _etc(
        tmp_path,
        OPENLOOKENG_MANAGER.format(base="hdfs://namenode.invalid:8020/opt/hetu/exchange"),
        {"exchange": profile},
    )
    manager = xs.ExchangeManager.from_etc(etc)
    assert type(manager.client).__name__ == "HdfsFileSystemClient"
