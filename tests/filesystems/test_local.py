from __future__ import annotations

import os
import pathlib

import pytest

from exchange_store.errors import InvalidArgumentError, StorageError
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.testing.filesystem import FileSystemClientTests


def _native(path: str) -> str:
    return path.removeprefix("file://")


class TestLocalClient(FileSystemClientTests):
    @pytest.fixture
    def client(self, tmp_path: pathlib.Path) -> FileSystemClient:
        root = tmp_path / "root"
        root.mkdir()
        return LocalFileSystemClient([str(root)])

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        return pathlib.Path(_native(path)).read_bytes()

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        p = pathlib.Path(_native(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


class TestLocalClientFileUri(TestLocalClient):
    """The same suite with roots written as file:// URIs (paths keep that form)."""

    @pytest.fixture
    def client(self, tmp_path: pathlib.Path) -> FileSystemClient:
        root = tmp_path / "root"
        return LocalFileSystemClient([f"file://{root}"])


def _partials(base: pathlib.Path) -> list[str]:
    return [str(p) for p in base.rglob("*.partial")]


def test_file_uri_root_keeps_its_form(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([f"file://{tmp_path}/"])
    assert client.roots == (f"file://{tmp_path}",)
    path = f"file://{tmp_path}/a/b.bin"
    client.write_file(path, b"x")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"x"
    assert [e.path for e in client.walk(f"file://{tmp_path}")] == [path]
    assert client.info(path).path == path


def test_plain_and_uri_forms_of_paths_under_a_uri_root(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([f"file://{tmp_path}"])
    with pytest.raises(InvalidArgumentError):
        client.read_file(str(tmp_path / "x"))  # a plain path is not under a file:// root


def test_non_local_uri_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgumentError, match="s3://b/x"):
        LocalFileSystemClient(["s3://b/x"])


def test_partial_file_exists_only_while_writing(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    stream = client.create(join(str(tmp_path), "d", "f"))
    stream.write(b"abc")
    (partial,) = _partials(tmp_path)
    assert partial.startswith(str(tmp_path / "d" / "f."))
    assert client.list(str(tmp_path / "d")) == []  # partial files are never listed
    stream.close()
    assert _partials(tmp_path) == []
    assert (tmp_path / "d" / "f").read_bytes() == b"abc"


def test_abort_removes_partial(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    stream = client.create(join(str(tmp_path), "f"))
    stream.write(b"abc")
    stream.abort()
    stream.abort()  # idempotent
    assert _partials(tmp_path) == []
    assert os.listdir(tmp_path) == []


def test_failure_in_close_removes_partial(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    target = tmp_path / "is-a-dir"
    (target / "child").mkdir(parents=True)  # os.replace onto a non-empty directory fails
    stream = client.create(str(target))
    stream.write(b"abc")
    with pytest.raises(StorageError) as info:
        stream.close()
    assert str(target) in str(info.value)
    assert _partials(tmp_path) == []
    assert (target / "child").is_dir()


def test_failed_exclusive_create_leaves_no_temp(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    client.write_exclusive(str(tmp_path / "m"), b"1")
    with pytest.raises(FileExistsError):
        client.write_exclusive(str(tmp_path / "m"), b"2")
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_stale_partials_are_cleaned(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    stale = tmp_path / "q" / "f.0123.partial"
    stale.parent.mkdir()
    stale.write_bytes(b"left by a killed writer")
    os.utime(stale, (1, 1))
    live = client.create(str(tmp_path / "q" / "g"))
    live.write(b"in progress")
    assert client.abort_multipart_uploads(str(tmp_path), older_than=3600) == 1
    assert not stale.exists()
    live.close()
    assert (tmp_path / "q" / "g").read_bytes() == b"in progress"
    assert client.abort_multipart_uploads(str(tmp_path)) == 0


def test_relative_root(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    client = LocalFileSystemClient(["var/exchange"])
    client.write_file("var/exchange/q/f", b"x")
    assert (tmp_path / "var" / "exchange" / "q" / "f").read_bytes() == b"x"
    assert [e.path for e in client.walk("var/exchange")] == ["var/exchange/q/f"]
    with pytest.raises(InvalidArgumentError):
        client.read_file("var/other")


def test_read_of_directory_is_storage_error(tmp_path: pathlib.Path) -> None:
    client = LocalFileSystemClient([str(tmp_path)])
    (tmp_path / "d").mkdir()
    with pytest.raises(StorageError, match=str(tmp_path / "d")):
        client.read_file(str(tmp_path / "d"))


_CHILD = """
import sys
from exchange_store.filesystems.local import LocalFileSystemClient
root, path = sys.argv[1], sys.argv[2]
stream = LocalFileSystemClient([root]).create(path)
stream.write(b"half of the data")
print("ready", flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_sigkilled_writer_leaves_nothing_visible(tmp_path: pathlib.Path) -> None:
    import signal
    import subprocess
    import sys

    path = str(tmp_path / "q" / "f.bin")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    client = LocalFileSystemClient([str(tmp_path)])
    assert not client.exists(path)
    assert list(client.walk(str(tmp_path))) == []
    assert len(_partials(tmp_path)) == 1
    assert client.abort_multipart_uploads(str(tmp_path)) == 1
    assert _partials(tmp_path) == []


def test_exclusive_create_across_processes(tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from exchange_store.errors import CommitConflictError\n"
        "from exchange_store.filesystems.local import LocalFileSystemClient\n"
        "c = LocalFileSystemClient([sys.argv[1]])\n"
        "try:\n"
        "    c.write_exclusive(sys.argv[1] + '/m', sys.argv[2].encode())\n"
        "    print('won')\n"
        "except CommitConflictError:\n"
        "    print('lost')\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), f"p{i}"], stdout=subprocess.PIPE
        )
        for i in range(4)
    ]
    outcomes = [c.communicate(timeout=60)[0].decode().strip() for c in children]
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    winner = outcomes.index("won")
    assert (tmp_path / "m").read_bytes() == f"p{winner}".encode()
    assert os.listdir(tmp_path) == ["m"]


def test_checked_paths_are_remembered_without_letting_others_through(
    tmp_path: pathlib.Path,
) -> None:
    root = tmp_path / "root"
    client = LocalFileSystemClient([str(root)])
    inside = f"{root}/q/e//data-0.xsf"
    assert client.check_path(inside) == f"{root}/q/e/data-0.xsf"
    assert client.check_path(inside) == f"{root}/q/e/data-0.xsf"  # remembered, same answer
    for bad in (f"{root}-other/x", f"{root}/q/../../x", str(tmp_path)):
        with pytest.raises(InvalidArgumentError):
            client.check_path(bad)
    # More distinct paths than it remembers: still every one checked right.
    for i in range(5000):
        assert client.check_path(f"{root}/p/{i}") == f"{root}/p/{i}"
    with pytest.raises(InvalidArgumentError):
        client.check_path(f"{root}/../escape")
    assert client.check_path(inside) == f"{root}/q/e/data-0.xsf"
