from __future__ import annotations

import os
import pathlib
import uuid

import pytest

from exchange_store.errors import ConfigurationError
from exchange_store.filesystems._schemas import HDFS_SCHEMA
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.hdfs import (
    HdfsFileSystemClient,
    hdfs_connect_kwargs,
    parse_hadoop_xml,
)
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.filesystem import FileSystemClientTests

CORE_SITE = """<?xml version="1.0"?>
<configuration>
  <property><name>fs.defaultFS</name><value>hdfs://nn:8020</value></property>
  <property><name>dfs.client.use.datanode.hostname</name><value> true </value></property>
</configuration>
"""


def kwargs_of(props: dict[str, str], roots: list[str] | None = None) -> dict[str, object]:
    values = HDFS_SCHEMA.parse({"fs.client.type": "hdfs", **props}, "hdfs.properties")
    return hdfs_connect_kwargs(values, roots or ["hdfs://nn:8020/x"], source="hdfs.properties")


def test_defaults() -> None:
    assert kwargs_of({}) == {"host": "nn", "port": 8020, "replication": 3}


def test_config_resources_become_extra_conf(tmp_path: pathlib.Path) -> None:
    core = tmp_path / "core-site.xml"
    core.write_text(CORE_SITE)
    hdfs_site = tmp_path / "hdfs-site.xml"
    hdfs_site.write_text(
        "<configuration><property><name>dfs.replication</name><value>2</value></property></configuration>"
    )
    kw = kwargs_of({"hdfs.config.resources": f"{core}, {hdfs_site}", "hdfs.user": "etl"})
    assert kw["extra_conf"] == {
        "fs.defaultFS": "hdfs://nn:8020",
        "dfs.client.use.datanode.hostname": "true",
        "dfs.replication": "2",
    }
    assert kw["user"] == "etl"
    assert parse_hadoop_xml(str(core))["fs.defaultFS"] == "hdfs://nn:8020"


def test_missing_resource_names_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope-site.xml"
    with pytest.raises(
        ConfigurationError, match=rf"hdfs.properties.*hdfs.config.resources.*{missing}"
    ):
        kwargs_of({"hdfs.config.resources": str(missing)})
    bad = tmp_path / "bad.xml"
    bad.write_text("<configuration>")
    with pytest.raises(ConfigurationError, match=str(bad)):
        kwargs_of({"hdfs.config.resources": str(bad)})


def test_kerberos_requires_keytab_and_principal(tmp_path: pathlib.Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"hdfs\.krb5\.keytab\.path and hdfs\.krb5\.principal"
    ):
        kwargs_of({"hdfs.authentication.type": "KERBEROS"})
    with pytest.raises(ConfigurationError, match=r"requires hdfs\.krb5\.principal$"):
        kwargs_of({"hdfs.authentication.type": "kerberos", "hdfs.krb5.keytab.path": "/k"})
    with pytest.raises(
        ConfigurationError, match=r"hdfs\.krb5\.keytab\.path=/no/such\.keytab: file not found"
    ):
        kwargs_of(
            {
                "hdfs.authentication.type": "KERBEROS",
                "hdfs.krb5.keytab.path": "/no/such.keytab",
                "hdfs.krb5.principal": "xs@EXAMPLE.COM",
            }
        )


def test_kerberos_settings(tmp_path: pathlib.Path) -> None:
    keytab = tmp_path / "xs.keytab"
    keytab.write_bytes(b"\x05\x02")
    kw = kwargs_of(
        {
            "hdfs.authentication.type": "KERBEROS",
            "hdfs.krb5.keytab.path": str(keytab),
            "hdfs.krb5.principal": "xs@EXAMPLE.COM",
        }
    )
    assert kw["_kerberos"] == {
        "keytab": str(keytab),
        "principal": "xs@EXAMPLE.COM",
        "krb5_conf": None,
        "ticket_cache": None,
    }
    assert kw["extra_conf"] == {"hadoop.security.authentication": "kerberos"}


def test_bad_authentication_type() -> None:
    with pytest.raises(ConfigurationError, match=r"hdfs.authentication.type=.*NONE \| KERBEROS"):
        kwargs_of({"hdfs.authentication.type": "LDAP"})


def test_roots_must_share_one_namenode() -> None:
    with pytest.raises(ConfigurationError, match="different namenodes"):
        kwargs_of({}, ["hdfs://a:8020/x", "hdfs://b:8020/y"])
    with pytest.raises(ConfigurationError, match="not an hdfs:// URI"):
        kwargs_of({}, ["/var/x"])


def test_load_filesystem_builds_without_connecting() -> None:
    client = load_filesystem({"fs.client.type": "hdfs"}, ["hdfs://nn:8020/spool"])
    assert isinstance(client, HdfsFileSystemClient)
    assert client._native("hdfs://nn:8020/spool/a/b") == "/spool/a/b"
    assert client._uri("/spool/a/b") == "hdfs://nn:8020/spool/a/b"
    assert not client.supports_atomic_create


@pytest.mark.hdfs
@pytest.mark.skipif(
    not os.environ.get("HADOOP_HOME"), reason="HDFS tests need HADOOP_HOME (a Hadoop client)"
)
class TestHdfsClient(FileSystemClientTests):
    """Runs against the cluster named by EXCHANGE_STORE_TEST_HDFS (default hdfs://localhost:8020)."""

    large_size = 8 * 1024 * 1024

    @pytest.fixture
    def client(self) -> FileSystemClient:
        base = os.environ.get("EXCHANGE_STORE_TEST_HDFS", "hdfs://localhost:8020/tmp")
        return load_filesystem(
            {"fs.client.type": "hdfs"}, [f"{base.rstrip('/')}/xs-{uuid.uuid4().hex}"]
        )

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        assert isinstance(client, HdfsFileSystemClient)
        try:
            with client.fs.open_input_stream(client._native(path)) as f:
                return bytes(f.read())
        except OSError as exc:
            raise FileNotFoundError(path) from exc

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        assert isinstance(client, HdfsFileSystemClient)
        native = client._native(path)
        client.fs.create_dir(native.rsplit("/", 1)[0], recursive=True)
        with client.fs.open_output_stream(native) as f:
            f.write(data)


class TestHdfsClientOnArrowLocalFs(FileSystemClientTests):
    """The HDFS client's use of the pyarrow.fs API, checked on pyarrow's LocalFileSystem.

    Same API as HadoopFileSystem (streams, move, FileSelector), no Hadoop needed; it does not
    prove HDFS semantics (the HADOOP_HOME suite above does).
    """

    large_size = 8 * 1024 * 1024

    @pytest.fixture
    def client(self, tmp_path: pathlib.Path) -> FileSystemClient:
        from pyarrow import fs as pafs

        client = HdfsFileSystemClient([f"hdfs://nn:8020{tmp_path}/root"])
        client._fs = pafs.LocalFileSystem()
        return client

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        return pathlib.Path(path.removeprefix("hdfs://nn:8020")).read_bytes()

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        p = pathlib.Path(path.removeprefix("hdfs://nn:8020"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
