# ruff: noqa: D102  (test names are their documentation)
"""A conformance suite every :class:`FileSystemClient` must pass (shipped for third parties).

Use it by subclassing in a pytest module::

    class TestMyClient(FileSystemClientTests):
        @pytest.fixture
        def client(self, tmp_path):
            return MyFileSystemClient([f"my://{tmp_path.name}"])

        def raw_read(self, client, path):
            ...  # read ``path`` without going through ``client``

        def raw_write(self, client, path, data):
            ...  # write ``path`` without going through ``client``

The ``client`` fixture must return a client whose first root is a fresh, empty directory.
``raw_read`` / ``raw_write`` take the full path (the form of the roots) and reach the backend
out of band, so the suite checks what really landed on storage.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from exchange_store.errors import (
    CommitConflictError,
    InvalidArgumentError,
    StorageFileNotFoundError,
)
from exchange_store.filesystems.base import FileSystemClient, join

__all__ = ["FileSystemClientTests"]

MiB = 1024 * 1024


def _pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-enough bytes (so misplaced parts are caught)."""
    block = bytes((i * 31 + seed) % 251 for i in range(4096))
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += counter.to_bytes(8, "big") + block
        counter += 1
    return bytes(out[:size])


class FileSystemClientTests:
    """The behaviour every filesystem client shares; subclass it (see the module docstring)."""

    #: Size of the large streaming round trip (big enough for several S3 multipart parts).
    large_size: int = 40 * MiB
    #: Size of each write call in the large round trip.
    large_chunk: int = MiB
    #: Threads racing in the concurrent exclusive-create test.
    racers: int = 8

    # ------------------------------------------------------------------ to supply

    @pytest.fixture
    def client(self) -> FileSystemClient:
        """A client whose first root is a fresh, empty directory."""
        raise NotImplementedError

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        """Read ``path`` out of band (not through ``client``)."""
        raise NotImplementedError

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        """Write ``path`` out of band (not through ``client``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def root(client: FileSystemClient) -> str:
        """The first root of ``client``."""
        return client.roots[0]

    def names(self, client: FileSystemClient, path: str) -> list[str]:
        """Names listed one level under ``path``."""
        return [entry.name for entry in client.list(path)]

    # ------------------------------------------------------------------ streaming writes

    def test_streaming_write_invisible_until_close(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "d", "stream.bin")
        stream = client.create(path)
        stream.write(b"hello ")
        stream.write(memoryview(b"world"))
        assert not client.exists(path)
        assert "stream.bin" not in self.names(client, join(self.root(client), "d"))
        stream.close()
        assert client.read_file(path) == b"hello world"
        assert self.raw_read(client, path) == b"hello world"
        assert self.names(client, join(self.root(client), "d")) == ["stream.bin"]

    def test_streaming_write_of_nothing_creates_empty_file(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "empty.bin")
        client.create(path).close()
        assert client.read_file(path) == b""
        assert client.size(path) == 0

    def test_abort_leaves_nothing(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "d", "aborted.bin")
        stream = client.create(path)
        stream.write(b"x" * 1000)
        stream.abort()
        assert not client.exists(path)
        assert list(client.walk(self.root(client))) == []
        with pytest.raises(FileNotFoundError):
            self.raw_read(client, path)

    def test_context_manager_closes_or_aborts(self, client: FileSystemClient) -> None:
        good = join(self.root(client), "good.bin")
        bad = join(self.root(client), "bad.bin")
        with client.create(good) as stream:
            stream.write(b"kept")
        with pytest.raises(RuntimeError, match="boom"), client.create(bad) as stream:
            stream.write(b"dropped")
            raise RuntimeError("boom")
        assert client.read_file(good) == b"kept"
        assert not client.exists(bad)
        assert self.names(client, self.root(client)) == ["good.bin"]

    def test_streaming_write_replaces_existing_file(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "f.bin")
        self.raw_write(client, path, b"old")
        with client.create(path) as stream:
            stream.write(b"new")
        assert client.read_file(path) == b"new"

    def test_large_streaming_write_round_trip(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "large.bin")
        data = _pattern(self.large_size, seed=7)
        view = memoryview(data)
        stream = client.create(path)
        for offset in range(0, len(data), self.large_chunk):
            stream.write(view[offset : offset + self.large_chunk])
        assert not client.exists(path)
        stream.close()
        assert client.size(path) == len(data)
        assert client.read_file(path) == data
        middle = len(data) // 2 - 17
        assert client.read_range(path, middle, 3 * MiB) == data[middle : middle + 3 * MiB]

    # ------------------------------------------------------------------ exclusive create

    def test_write_exclusive_creates(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "a", "b", "marker")
        client.write_exclusive(path, b"winner")
        assert self.raw_read(client, path) == b"winner"
        assert client.read_file(path) == b"winner"

    def test_create_exclusive_raises_file_exists(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "marker")
        client.write_exclusive(path, b"first")
        with pytest.raises(CommitConflictError) as info:
            client.write_exclusive(path, b"second")
        assert isinstance(info.value, FileExistsError)
        assert path in str(info.value)
        assert client.read_file(path) == b"first"

    def test_write_exclusive_over_out_of_band_file(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "marker")
        self.raw_write(client, path, b"other")
        with pytest.raises(FileExistsError):
            client.write_exclusive(path, b"mine")
        assert self.raw_read(client, path) == b"other"

    def test_concurrent_exclusive_creates_one_wins(self, client: FileSystemClient) -> None:
        if not client.supports_atomic_create:
            pytest.skip(f"{type(client).__name__} does not support atomic create")
        path = join(self.root(client), "race", "marker")
        barrier = threading.Barrier(self.racers)

        def race(i: int) -> bytes | None:
            payload = f"racer-{i}".encode()
            barrier.wait()
            try:
                client.write_exclusive(path, payload)
            except CommitConflictError:
                return None
            return payload

        with ThreadPoolExecutor(self.racers) as pool:
            results = list(pool.map(race, range(self.racers)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, results
        assert client.read_file(path) == winners[0]
        assert self.names(client, join(self.root(client), "race")) == ["marker"]

    # ------------------------------------------------------------------ replace

    def test_write_file_creates_and_replaces(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "x", "state.json")
        client.write_file(path, b"v1")
        assert self.raw_read(client, path) == b"v1"
        client.write_file(path, b"version two")
        assert client.read_file(path) == b"version two"
        assert self.names(client, join(self.root(client), "x")) == ["state.json"]

    # ------------------------------------------------------------------ reads

    def test_read_file_out_of_band(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "oob.bin")
        data = _pattern(100_000, seed=3)
        self.raw_write(client, path, data)
        assert client.read_file(path) == data

    def test_read_range(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "r.bin")
        data = bytes(range(256)) * 4
        client.write_file(path, data)
        assert client.read_range(path, 0, 10) == data[:10]
        assert client.read_range(path, 100, 50) == data[100:150]
        assert client.read_range(path, 1000, 100) == data[1000:]  # short at EOF
        assert client.read_range(path, 1024, 10) == b""
        assert client.read_range(path, 5, 0) == b""
        with pytest.raises(InvalidArgumentError):
            client.read_range(path, -1, 4)

    def test_missing_file_names_the_uri(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "no", "such", "file.bin")
        for op in (client.read_file, client.info, lambda p: client.read_range(p, 0, 4)):
            with pytest.raises(StorageFileNotFoundError) as info:
                op(path)
            assert isinstance(info.value, FileNotFoundError)
            assert path in str(info.value)

    # ------------------------------------------------------------------ metadata

    def test_info_size_exists(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "dir", "f.bin")
        client.write_file(path, b"12345")
        info = client.info(path)
        assert info.path == path
        assert info.size == 5
        assert not info.is_dir
        assert info.name == "f.bin"
        assert client.size(path) == 5
        assert client.exists(path)
        assert client.exists(join(self.root(client), "dir"))
        assert client.info(join(self.root(client), "dir")).is_dir
        assert not client.exists(join(self.root(client), "dir", "g.bin"))
        assert not client.exists(join(self.root(client), "di"))

    def test_list_one_level(self, client: FileSystemClient) -> None:
        root = self.root(client)
        client.write_file(join(root, "b.bin"), b"bb")
        client.write_file(join(root, "a.bin"), b"a")
        client.write_file(join(root, "sub", "c.bin"), b"ccc")
        client.write_file(join(root, "sub", "deeper", "d.bin"), b"dddd")
        entries = client.list(root)
        assert [(e.name, e.is_dir) for e in entries] == [
            ("a.bin", False),
            ("b.bin", False),
            ("sub", True),
        ]
        assert [e.path for e in entries] == [
            join(root, "a.bin"),
            join(root, "b.bin"),
            join(root, "sub"),
        ]
        assert {e.name: e.size for e in entries if not e.is_dir} == {"a.bin": 1, "b.bin": 2}
        assert [(e.name, e.is_dir) for e in client.list(join(root, "sub"))] == [
            ("c.bin", False),
            ("deeper", True),
        ]

    def test_list_missing_directory_is_empty(self, client: FileSystemClient) -> None:
        assert client.list(join(self.root(client), "nothing", "here")) == []

    def test_list_does_not_match_name_prefixes(self, client: FileSystemClient) -> None:
        root = self.root(client)
        client.write_file(join(root, "ab", "x"), b"1")
        client.write_file(join(root, "abc", "y"), b"2")
        assert self.names(client, join(root, "ab")) == ["x"]

    def test_walk(self, client: FileSystemClient) -> None:
        root = self.root(client)
        files = {
            join(root, "a.bin"): b"a",
            join(root, "s", "b.bin"): b"bb",
            join(root, "s", "t", "c.bin"): b"ccc",
            join(root, "u", "v", "w", "d.bin"): b"dddd",
        }
        for path, data in files.items():
            client.write_file(path, data)
        walked = list(client.walk(root))
        assert sorted(e.path for e in walked) == sorted(files)
        assert all(not e.is_dir for e in walked)
        assert {e.path: e.size for e in walked} == {p: len(d) for p, d in files.items()}
        assert [e.path for e in client.walk(join(root, "s"))] == [
            join(root, "s", "b.bin"),
            join(root, "s", "t", "c.bin"),
        ]

    # ------------------------------------------------------------------ deletes

    def test_delete(self, client: FileSystemClient) -> None:
        path = join(self.root(client), "d", "f.bin")
        client.write_file(path, b"x")
        client.delete(path)
        assert not client.exists(path)
        client.delete(path)  # missing is fine
        client.delete(join(self.root(client), "never", "was"))

    def test_delete_recursive(self, client: FileSystemClient) -> None:
        root = self.root(client)
        for name in ("a", "b/c", "b/d/e", "b/d/f"):
            client.write_file(join(root, "tree", name), name.encode())
        client.write_file(join(root, "kept"), b"k")
        client.write_file(join(root, "tree2", "g"), b"g")
        client.delete_recursive(join(root, "tree"))
        assert not client.exists(join(root, "tree", "b", "d", "e"))
        assert not client.exists(join(root, "tree"))
        assert sorted(e.path for e in client.walk(root)) == [
            join(root, "kept"),
            join(root, "tree2", "g"),
        ]
        client.delete_recursive(join(root, "tree"))  # missing is fine

    def test_delete_recursive_refuses_a_root(self, client: FileSystemClient) -> None:
        with pytest.raises(InvalidArgumentError, match="base directory"):
            client.delete_recursive(self.root(client))

    # ------------------------------------------------------------------ confinement

    def test_path_outside_roots_refused(self, client: FileSystemClient) -> None:
        root = self.root(client)
        outside = root.rstrip("/") + "-sibling/f.bin"
        with pytest.raises(InvalidArgumentError) as info:
            client.write_file(outside, b"x")
        assert outside in str(info.value)
        with pytest.raises(InvalidArgumentError):
            client.read_file(outside)
        with pytest.raises(InvalidArgumentError):
            client.create(outside)

    def test_dot_dot_refused(self, client: FileSystemClient) -> None:
        sneaky = join(self.root(client), "a", "..", "..", "escape.bin")
        with pytest.raises(InvalidArgumentError) as info:
            client.write_file(sneaky, b"x")
        assert sneaky in str(info.value)
        with pytest.raises(InvalidArgumentError):
            client.delete_recursive(join(self.root(client), ".."))
