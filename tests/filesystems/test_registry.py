from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from exchange_store.errors import BackendNotInstalledError, ConfigurationError
from exchange_store.filesystems import registry
from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.filesystems.registry import (
    filesystem_registry,
    get_filesystem_class,
    infer_client_type,
    load_filesystem,
    register_filesystem,
)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)


def test_builtin_types() -> None:
    assert {"local", "s3", "hdfs", "fsspec"} <= set(filesystem_registry)
    assert get_filesystem_class("local") is LocalFileSystemClient


def test_registry_view_is_read_only() -> None:
    with pytest.raises(TypeError):
        filesystem_registry["x"] = filesystem_registry["local"]  # type: ignore[index]


def test_load_local(tmp_path: pathlib.Path) -> None:
    client = load_filesystem(
        {"fs.client.type": "local"}, [str(tmp_path)], source="etc/x.properties"
    )
    assert isinstance(client, LocalFileSystemClient)
    assert client.roots == (str(tmp_path),)


def test_type_inferred_from_roots(tmp_path: pathlib.Path) -> None:
    assert isinstance(load_filesystem({}, [f"file://{tmp_path}"]), LocalFileSystemClient)
    assert infer_client_type(["/a", "file:///b"]) == "local"
    assert infer_client_type(["s3://b/p"]) == "s3"
    assert infer_client_type(["hdfs://nn:8020/x"]) == "hdfs"
    assert infer_client_type(["gs://b/x"]) == "fsspec"
    with pytest.raises(ConfigurationError, match="mix"):
        infer_client_type(["/a", "s3://b/p"])


def test_unknown_type_names_file_and_allowed_values(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_filesystem(
            {"fs.client.type": "ftp"}, [str(tmp_path)], source="etc/filesystem/x.properties"
        )
    message = str(info.value)
    assert "etc/filesystem/x.properties" in message
    assert "'ftp'" in message
    for allowed in ("local", "s3", "hdfs", "fsspec"):
        assert allowed in message


def test_unknown_key_names_file_and_key(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigurationError, match=r"etc/filesystem/x.properties.*s3.endpoint"):
        load_filesystem(
            {"fs.client.type": "local", "s3.endpoint": "http://x"},
            [str(tmp_path)],
            source="etc/filesystem/x.properties",
        )


def test_local_type_with_s3_root_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"etc/f.properties.*s3://b/p"):
        load_filesystem({"fs.client.type": "local"}, ["s3://b/p"], source="etc/f.properties")


def test_no_roots() -> None:
    with pytest.raises(ConfigurationError, match="no base directories"):
        load_filesystem({"fs.client.type": "local"}, [" "], source="etc/f.properties")


@pytest.mark.usefixtures("clean_registry")
def test_missing_backend_gives_install_hint(tmp_path: pathlib.Path) -> None:
    register_filesystem(
        "exotic",
        "exchange_store_no_such_backend.client:Client",
        install_hint="pip install exotic-fs",
    )
    with pytest.raises(BackendNotInstalledError) as info:
        load_filesystem({"fs.client.type": "exotic"}, [str(tmp_path)], source="etc/e.properties")
    assert isinstance(info.value, ImportError)
    assert "pip install exotic-fs" in str(info.value)
    assert "etc/e.properties" in str(info.value)


@pytest.mark.usefixtures("clean_registry")
def test_register_refuses_silent_override() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_filesystem("local", "somewhere.else:Client")
    register_filesystem("local", "somewhere.else:Client", clobber=True)
    assert filesystem_registry["local"].target == "somewhere.else:Client"


@pytest.mark.usefixtures("clean_registry")
def test_register_class_and_bad_targets(tmp_path: pathlib.Path) -> None:
    class Mine(LocalFileSystemClient):
        pass

    register_filesystem("mine", Mine)
    assert get_filesystem_class("mine") is Mine
    assert isinstance(load_filesystem({"fs.client.type": "mine"}, [str(tmp_path)]), Mine)
    with pytest.raises(TypeError):
        register_filesystem("bad", int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:Class"):
        register_filesystem("other", "no_colon")
    register_filesystem("notaclient", "exchange_store.errors:ConfigurationError")
    with pytest.raises(ConfigurationError, match="not a FileSystemClient"):
        get_filesystem_class("notaclient")
    register_filesystem("missingattr", "exchange_store.errors:Nope")
    with pytest.raises(ConfigurationError, match="does not exist"):
        get_filesystem_class("missingattr")


def test_type_names_are_case_insensitive(tmp_path: pathlib.Path) -> None:
    assert isinstance(
        load_filesystem({"fs.client.type": "LOCAL"}, [str(tmp_path)]), LocalFileSystemClient
    )
