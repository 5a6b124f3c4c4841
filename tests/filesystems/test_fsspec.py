from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import pytest

from exchange_store.errors import ConfigurationError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.fsspec import (
    FsspecFileSystemClient,
    MemoryFsspecFileSystemClient,
    fsspec_options,
)
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.testing.filesystem import FileSystemClientTests


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A unique root in fsspec's process-global memory store, removed afterwards."""
    name = f"xs-test-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


class TestMemoryClient(FileSystemClientTests):
    large_size = 8 * 1024 * 1024

    @pytest.fixture
    def client(self, memory_root: str) -> FileSystemClient:
        return load_filesystem({"fs.client.type": "fsspec"}, [memory_root], source="mem.properties")

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        return bytes(fsspec.filesystem("memory").cat_file(path))

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        fsspec.filesystem("memory").pipe_file(path, data)


class TestGenericMemoryClient(TestMemoryClient):
    """The generic (check-then-write) path, on the memory protocol."""

    @pytest.fixture
    def client(self, memory_root: str) -> FileSystemClient:
        client = FsspecFileSystemClient([memory_root])
        assert not client.supports_atomic_create
        return client


def test_memory_gets_the_atomic_subclass(memory_root: str) -> None:
    client = load_filesystem(
        {"fs.client.type": "fsspec", "fsspec.protocol": "memory"}, [memory_root]
    )
    assert type(client) is MemoryFsspecFileSystemClient
    assert client.supports_atomic_create
    assert "memory" in repr(client)


def test_options_are_passed() -> None:
    values = {"fsspec.protocol": "memory", "fsspec.option.token": "anon", "fsspec.option.x": "1"}
    assert fsspec_options(values) == {"token": "anon", "x": "1"}


def test_options_reach_the_filesystem() -> None:
    client = load_filesystem(
        {"fs.client.type": "fsspec", "fsspec.option.auto_mkdir": "true"}, ["file:///tmp/xs-generic"]
    )
    assert isinstance(client, FsspecFileSystemClient)
    assert client.protocol == "file"
    assert client.fs.auto_mkdir == "true"


def test_unknown_protocol_names_file() -> None:
    with pytest.raises(ConfigurationError, match=r"g.properties.*nosuchproto"):
        load_filesystem({"fs.client.type": "fsspec"}, ["nosuchproto://b/x"], source="g.properties")


def test_plain_path_roots_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"g.properties.*/var/x"):
        load_filesystem({"fs.client.type": "fsspec"}, ["/var/x"], source="g.properties")


def test_unknown_key_names_file() -> None:
    with pytest.raises(ConfigurationError, match=r"g.properties.*fsspec.protocl"):
        load_filesystem(
            {"fs.client.type": "fsspec", "fsspec.protocl": "memory"},
            ["memory://x"],
            source="g.properties",
        )
