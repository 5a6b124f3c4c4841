"""The local (POSIX) filesystem client.

Roots are absolute or relative paths (``/var/spool/x``) or ``file://`` URIs
(``file:///var/spool/x``); every path the client returns keeps the form of the root it is under.

Atomicity:
    * ``create``: the bytes go to ``<path>.<uuid>.partial`` in the same directory; ``close()``
      fsyncs the file, moves it into place with ``os.replace`` and fsyncs the directory (with
      ``sync=False`` only the move: the file is whole or absent, durable against a killed
      process but not a machine crash).
      ``abort()`` (or a failure inside ``close()``) removes the partial file.
    * ``write_exclusive``: a fsynced temporary file is hard-linked to the target
      (``os.link`` fails with ``FileExistsError`` when the target exists, atomically against any
      concurrent writer, including other processes), then the temporary name is unlinked.
    * ``write_file``: a fsynced temporary file replaces the target (``os.replace``).

``*.partial`` files are never listed. A process killed in the middle of a write leaves its
partial file behind; :meth:`FileSystemClient.abort_multipart_uploads` removes those older than a
given age (the local equivalent of aborting incomplete S3 multipart uploads).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import uuid
from collections.abc import Sequence
from typing import IO

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = ["PARTIAL_SUFFIX", "LocalFileSystemClient"]

PARTIAL_SUFFIX = ".partial"
_FILE_PREFIX = "file://"


def _temp_name(native: str) -> str:
    return f"{native}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"


def _fsync_dir(directory: str) -> None:
    """Make a rename or link in ``directory`` durable (best effort where unsupported)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_for(native: str) -> str:
    parent = os.path.dirname(native)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return parent


def _unlink_quietly(native: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(native)


def _create_new(path: str) -> IO[bytes]:
    """Open a new file for writing, creating its parent directories.

    A concurrent remover of empty directories (``gc``, a closing exchange pruning its query
    directory) may take a parent away between ``makedirs`` and ``open``: try again.
    """
    for _ in range(8):
        _makedirs_for(path)
        try:
            return open(path, "xb")
        except FileNotFoundError:
            continue
    _makedirs_for(path)
    return open(path, "xb")


def _write_temp(native: str, data: bytes) -> str:
    """Write ``data`` to a fsynced temporary file beside ``native``; returns its name."""
    tmp = _temp_name(native)
    try:
        with _create_new(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


class _LocalOutputStream:
    """A streaming write into a ``.partial`` file, renamed into place on close."""

    def __init__(self, native: str, sync: bool = True) -> None:
        self._native = native
        self._sync = sync
        self._parent = os.path.dirname(native)
        self._tmp = _temp_name(native)
        self._file: IO[bytes] | None = _create_new(self._tmp)
        self._done = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._file is None:
            raise ValueError(f"write to a closed stream for {self._native}")
        self._file.write(data)
        return len(data)

    def close(self) -> None:
        if self._done:
            return
        f = self._file
        try:
            if f is None:
                raise ValueError(f"close of an aborted stream for {self._native}")
            f.flush()
            if self._sync:
                os.fsync(f.fileno())
            f.close()
            self._file = None
            os.replace(self._tmp, self._native)
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self._sync:
            _fsync_dir(self._parent)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        f, self._file = self._file, None
        try:
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        finally:
            _unlink_quietly(self._tmp)

    def __del__(self) -> None:
        # A stream dropped without close/abort must not leave its partial file behind.
        if not getattr(self, "_done", True):
            with contextlib.suppress(Exception):
                self.abort()


class LocalFileSystemClient(FileSystemClient):
    """A client over the local filesystem (see the module docstring for atomicity)."""

    scheme = "file"
    supports_atomic_create = True
    supports_multipart_cleanup = True
    supports_ranged_reads = True

    def __init__(self, roots: Sequence[str], **kwargs: int) -> None:
        for root in roots:
            if "://" in root and not root.startswith(_FILE_PREFIX):
                raise InvalidArgumentError(
                    f"base directory {root!r} is not a local path or file:// URI"
                )
        super().__init__(roots, **kwargs)
        # (native root, root as configured) pairs, longest first, to restore the URI form.
        pairs = [(self._strip(r), r) for r in self.roots]
        self._root_forms = sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    @classmethod
    def from_properties(
        cls, properties: dict[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> LocalFileSystemClient:
        """Build a client from ``etc/filesystem/NAME.properties`` (only ``fs.client.type``)."""
        from exchange_store.filesystems._schemas import LOCAL_SCHEMA

        LOCAL_SCHEMA.parse(properties, source)
        try:
            return cls(roots)
        except InvalidArgumentError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None

    # ------------------------------------------------------------------ paths

    @staticmethod
    def _strip(path: str) -> str:
        if path.startswith(_FILE_PREFIX):
            rest = path[len(_FILE_PREFIX) :]
            return rest if rest.startswith("/") else "/" + rest
        return path

    def _native(self, path: str) -> str:
        return self._strip(path)

    def _uri(self, native: str) -> str:
        for nroot, root in self._root_forms:
            if native == nroot or native.startswith(nroot.rstrip("/") + "/"):
                if root.startswith(_FILE_PREFIX):
                    return _FILE_PREFIX + (native if native.startswith("/") else "/" + native)
                return native
        return native

    # ------------------------------------------------------------------ primitives

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        return _LocalOutputStream(native, sync)

    def _write_exclusive(self, native: str, data: bytes) -> None:
        tmp = _write_temp(native, data)
        try:
            os.link(tmp, native)
        finally:
            _unlink_quietly(tmp)
        _fsync_dir(os.path.dirname(native))

    def _write_replace(self, native: str, data: bytes) -> None:
        tmp = _write_temp(native, data)
        try:
            os.replace(tmp, native)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(os.path.dirname(native))

    def _read(self, native: str) -> bytes:
        with open(native, "rb") as f:
            return f.read()

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        fd = os.open(native, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, length, offset)
            if 0 < len(data) < length:  # a regular file reads short only at its end: make sure
                parts = [data]
                got = len(data)
                while got < length:
                    more = os.pread(fd, length - got, offset + got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
            return data
        finally:
            os.close(fd)

    def _info(self, native: str) -> FileInfo:
        st = os.stat(native)
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileInfo(
            path=self._uri(native),
            size=0 if is_dir else st.st_size,
            mtime=st.st_mtime,
            is_dir=is_dir,
        )

    def _list(self, native: str) -> list[FileInfo]:
        out: list[FileInfo] = []
        try:
            entries = list(os.scandir(native))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            if entry.name.endswith(PARTIAL_SUFFIX):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted while listing
            is_dir = stat.S_ISDIR(st.st_mode)
            out.append(
                FileInfo(
                    path=self._uri(os.path.join(native, entry.name)),
                    size=0 if is_dir else st.st_size,
                    mtime=st.st_mtime,
                    is_dir=is_dir,
                )
            )
        return out

    def _delete(self, native: str) -> None:
        _unlink_quietly(native)

    def _remove_empty_dir(self, native: str) -> bool:
        try:
            os.rmdir(native)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True

    def _delete_recursive(self, native: str) -> None:
        try:
            st = os.lstat(native)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            _unlink_quietly(native)
            return
        # A concurrent deleter may remove entries under us: tolerate it and go round again.
        for _ in range(10):
            try:
                shutil.rmtree(native)
                return
            except FileNotFoundError:
                if not os.path.lexists(native):
                    return
        shutil.rmtree(native)

    def _abort_multipart_uploads(self, native: str, older_than: float | None) -> int:
        """Remove ``*.partial`` files left under ``native`` by writers that died."""
        cutoff = None if older_than is None else time.time() - older_than
        removed = 0
        for dirpath, _dirs, files in os.walk(native):
            for name in files:
                if not name.endswith(PARTIAL_SUFFIX):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    if cutoff is not None and os.stat(full).st_mtime > cutoff:
                        continue
                    os.unlink(full)
                    removed += 1
                except FileNotFoundError:
                    continue
        return removed
