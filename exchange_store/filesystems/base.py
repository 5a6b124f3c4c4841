"""The filesystem client interface: exactly what the exchange and the snapshot store need.

A :class:`FileSystemClient` is bound to a list of *roots* (the configured base directories) and
refuses any path outside them. Paths are URIs or absolute paths as written in the configuration
(``/var/x/a``, ``file:///var/x/a``, ``s3://bucket/prefix/a``, ``hdfs://nn:8020/x/a``,
``memory://x/a``); every error message carries that full path.

Subclasses implement the ``_``-prefixed primitives on *native* paths (what the backend SDK
takes) and raise builtins or their SDK's exceptions. The public methods here add, in one place:
confinement to the roots, retries of transient failures with capped exponential back-off
(tenacity), and translation of every failure into :class:`~exchange_store.errors.StorageError`
subclasses that name the full URI.
"""

from __future__ import annotations

import errno
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import tenacity

from exchange_store.errors import (
    CommitConflictError,
    InvalidArgumentError,
    StorageError,
    StorageFileNotFoundError,
    TransientStorageError,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "FileInfo",
    "FileSystemClient",
    "OutputStream",
    "is_transient",
    "join",
]

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 5
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ECONNRESET})
# How many checked paths a client remembers (cleared when full; a path is ~100 bytes).
_CHECKED_PATHS = 4096


@runtime_checkable
class OutputStream(Protocol):
    """A file being written. Nothing is visible at its path before :meth:`close` returns."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append ``data``; returns the number of bytes taken."""
        ...

    def close(self) -> None:
        """Complete the file: durable and visible at its path when this returns."""
        ...

    def abort(self) -> None:
        """Discard the file; nothing is left at its path (S3: the multipart upload is aborted)."""
        ...


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a listing.

    Attributes:
        path: Full path in the same form as the roots (URI or absolute path).
        size: Size in bytes (0 for directories).
        mtime: Modification time in seconds since the epoch, when the backend has one.
        is_dir: Whether the entry is a directory (or an S3 common prefix).
    """

    path: str
    size: int
    mtime: float | None
    is_dir: bool = False

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def join(base: str, *parts: str) -> str:
    """Join path parts with ``/`` onto a URI or absolute path, without doubling slashes."""
    out = base.rstrip("/") if base not in ("/", "") else base
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if not out.endswith("/") else f"{out}{part}"
    return out


def is_transient(exc: BaseException) -> bool:
    """Whether a (translated) failure may succeed when tried again."""
    if isinstance(exc, TransientStorageError):
        return True
    if isinstance(exc, FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


class _CheckedStream:
    """Wraps a backend stream so its failures become StorageError naming the path."""

    def __init__(self, client: FileSystemClient, path: str, inner: OutputStream) -> None:
        self._client = client
        self._path = path
        self._inner = inner
        self.bytes_written = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        try:
            n = self._inner.write(data)
        except BaseException as exc:
            raise self._client._translate("write", self._path, exc) from exc
        self.bytes_written += len(data)
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        except BaseException as exc:
            raise self._client._translate("close", self._path, exc) from exc

    def abort(self) -> None:
        try:
            self._inner.abort()
        except BaseException as exc:
            raise self._client._translate("abort", self._path, exc) from exc

    def __enter__(self) -> _CheckedStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FileSystemClient(ABC):
    """A filesystem confined to its roots, with retries and uniform errors.

    Concurrency: instances are thread-safe and may be shared by the threads of one process;
    they are not shared across processes (each process loads its own from the configuration).

    Class attributes (capability flags):
        scheme: The URI scheme the client serves (``file``, ``s3``, ``hdfs``, ...).
        supports_atomic_create: :meth:`write_exclusive` is atomic against concurrent writers.
            Where False, it is a check-then-write that a concurrent writer can race.
        supports_multipart_cleanup: :meth:`abort_multipart_uploads` does something.
        supports_ranged_reads: :meth:`read_range` reads only the requested bytes.
    """

    scheme: ClassVar[str] = ""
    supports_atomic_create: ClassVar[bool] = True
    supports_multipart_cleanup: ClassVar[bool] = False
    supports_ranged_reads: ClassVar[bool] = True

    def __init__(self, roots: Sequence[str], *, max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if not roots:
            raise InvalidArgumentError("a filesystem client needs at least one base directory")
        self.roots: tuple[str, ...] = tuple(self._normalize(r) for r in roots)
        self.max_retries = max_retries
        # Paths already checked, normalized (readers check the same few files per block).
        self._checked: dict[str, str] = {}
        # Capped exponential back-off plus jitter (wait_exponential_jitter's ``initial`` is
        # deprecated in tenacity 9 and its ``multiplier`` missing from 8).
        self.retry_wait: tenacity.wait.wait_base = tenacity.wait_exponential(
            multiplier=0.05, max=2.0
        ) + tenacity.wait_random(0, 0.05)

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def _native(self, path: str) -> str:
        """Convert a full path (URI form) into the backend's native path."""

    @abstractmethod
    def _uri(self, native: str) -> str:
        """Convert a native backend path back into the URI form of the roots."""

    @abstractmethod
    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        """Open a streaming write; the file appears at ``native`` only on ``close()``.

        ``sync=False`` lets a client skip flushing to stable storage (local: no fsync); the file
        still appears whole or not at all.
        """

    @abstractmethod
    def _write_exclusive(self, native: str, data: bytes) -> None:
        """Create ``native`` holding ``data``; raise ``FileExistsError`` if it exists.

        Atomic where :attr:`supports_atomic_create` (readers see all of it or nothing).
        """

    @abstractmethod
    def _write_replace(self, native: str, data: bytes) -> None:
        """Create or replace ``native`` atomically (readers see the old or the new content)."""

    @abstractmethod
    def _read(self, native: str) -> bytes:
        """Read the whole file; ``FileNotFoundError`` if it is missing."""

    @abstractmethod
    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes from ``offset``; fewer at the end of the file."""

    @abstractmethod
    def _info(self, native: str) -> FileInfo:
        """Describe one file or directory; ``FileNotFoundError`` if it is missing."""

    @abstractmethod
    def _list(self, native: str) -> list[FileInfo]:
        """List one directory level (files and sub-directories); empty when missing."""

    @abstractmethod
    def _delete(self, native: str) -> None:
        """Delete one file; a missing file is not an error."""

    @abstractmethod
    def _delete_recursive(self, native: str) -> None:
        """Delete a directory and everything under it; missing is not an error."""

    def _abort_multipart_uploads(self, native: str, older_than: float | None) -> int:
        """Abort incomplete multipart uploads under ``native``; returns how many."""
        return 0

    def _remove_empty_dir(self, native: str) -> bool:
        """Remove the directory ``native`` if it is empty; True if it is gone.

        Object stores have no directories: the default says it is gone.
        """
        return True

    def _classify(self, exc: BaseException) -> BaseException:
        """Map a backend exception to a builtin (or a StorageError subclass).

        Backends with SDK exceptions override this (an S3 error-code table, say). The default
        leaves builtins as they are.
        """
        return exc

    # ------------------------------------------------------------------ public API

    def create(self, path: str, *, sync: bool = True) -> _CheckedStream:
        """Open ``path`` for a streaming write.

        Atomicity: nothing is visible at ``path`` until the stream's ``close()`` returns (local:
        a ``.partial`` file renamed on close; S3: a multipart upload completed on close; HDFS: a
        temporary file renamed). ``abort()`` leaves nothing behind. With ``sync=False`` the
        local client does not fsync the file and its directory at ``close()``: the file
        survives a killed process, not a machine crash (object stores are durable either way).
        """
        native = self._native(self.check_path(path))
        inner = self._retry("create", path, lambda: self._open_write(native, sync))
        return _CheckedStream(self, path, inner)

    def write_exclusive(self, path: str, data: bytes) -> None:
        """Publish a small file only if nothing is at ``path``.

        Atomicity: where :attr:`supports_atomic_create`, concurrent callers race and exactly one
        wins; readers see the whole content or nothing. A retry after a lost response that finds
        its own bytes already in place counts as success.

        Raises:
            CommitConflictError: ``path`` exists (another writer won).
            StorageError: the backend failed after retries.
        """
        native = self._native(self.check_path(path))
        tries = {"n": 0}

        def attempt() -> None:
            tries["n"] += 1
            try:
                self._write_exclusive(native, data)
            except BaseException as exc:
                mapped = self._classify(exc)
                # An earlier try may have landed before its response was lost.
                if (
                    isinstance(mapped, FileExistsError)
                    and tries["n"] > 1
                    and self._read(native) == data
                ):
                    return
                raise

        self._retry("write_exclusive", path, attempt)

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a small file atomically (readers see old or new, never a mix)."""
        native = self._native(self.check_path(path))
        self._retry("write_file", path, lambda: self._write_replace(native, data))

    def read_file(self, path: str) -> bytes:
        """Read a whole file.

        Raises:
            StorageFileNotFoundError: nothing at ``path``.
        """
        native = self._native(self.check_path(path))
        return self._retry("read", path, lambda: self._read(native))

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``; fewer only when the file ends first."""
        if offset < 0 or length < 0:
            raise InvalidArgumentError(f"bad range {offset}+{length} for {path}")
        native = self._native(self.check_path(path))
        if length == 0:
            return b""
        return self._retry("read_range", path, lambda: self._read_range(native, offset, length))

    def info(self, path: str) -> FileInfo:
        """Describe ``path``; raises :class:`StorageFileNotFoundError` when missing."""
        native = self._native(self.check_path(path))
        return self._retry("info", path, lambda: self._info(native))

    def size(self, path: str) -> int:
        """Size of the file at ``path`` in bytes."""
        return self.info(path).size

    def exists(self, path: str) -> bool:
        """Whether a file or directory is at ``path``."""
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def list(self, path: str) -> list[FileInfo]:
        """One level under the directory ``path``, sorted by path; empty when it is missing."""
        native = self._native(self.check_path(path))
        return sorted(self._retry("list", path, lambda: self._list(native)), key=lambda i: i.path)

    def walk(self, path: str) -> Iterator[FileInfo]:
        """Every file (not directory) under ``path``, depth first."""
        for entry in self.list(path):
            if entry.is_dir:
                yield from self.walk(entry.path)
            else:
                yield entry

    def delete(self, path: str) -> None:
        """Delete one file; a missing file is not an error."""
        native = self._native(self.check_path(path))
        self._retry("delete", path, lambda: self._delete(native))

    def delete_recursive(self, path: str) -> None:
        """Delete ``path`` and everything under it; missing is not an error.

        A root itself may not be deleted (only what is under it).
        """
        checked = self.check_path(path)
        if checked in self.roots:
            raise InvalidArgumentError(f"refusing to delete a base directory: {path}")
        native = self._native(checked)
        self._retry("delete_recursive", path, lambda: self._delete_recursive(native))

    def prune_empty_dirs(self, path: str, stop: str) -> None:
        """Remove ``path`` and then each parent while empty, up to but not including ``stop``.

        Safe beside concurrent writers: a directory is removed only if it is empty at that
        moment (``rmdir`` semantics), so nothing another writer put there is lost.
        """
        current = self.check_path(path)
        stop = self.check_path(stop)
        while current != stop and current.startswith(stop + "/") and current not in self.roots:
            native = self._native(current)

            def remove(n: str = native) -> bool:
                return self._remove_empty_dir(n)

            if not self._retry("prune", current, remove):
                return
            current = current.rsplit("/", 1)[0]

    def abort_multipart_uploads(self, path: str, older_than: float | None = None) -> int:
        """Abort incomplete multipart uploads under ``path`` (S3); returns how many.

        Args:
            path: Prefix under which uploads are aborted.
            older_than: Only uploads started more than this many seconds ago; None for all.
        """
        native = self._native(self.check_path(path))
        return self._retry(
            "abort_multipart_uploads",
            path,
            lambda: self._abort_multipart_uploads(native, older_than),
        )

    # ------------------------------------------------------------------ helpers

    def check_path(self, path: str) -> str:
        """Normalize ``path`` and make sure it is one of the roots or under one.

        Raises:
            InvalidArgumentError: the path is outside every root or contains ``..``.
        """
        checked = self._checked.get(path)
        if checked is not None:
            return checked
        norm = self._normalize(path)
        if any(seg == ".." for seg in path.split("/")):
            raise InvalidArgumentError(f"path {path!r} contains '..'")
        for root in self.roots:
            if norm == root or norm.startswith(root.rstrip("/") + "/"):
                if len(self._checked) >= _CHECKED_PATHS:
                    self._checked.clear()
                self._checked[path] = norm
                return norm
        raise InvalidArgumentError(
            f"path {path!r} is outside the base directories {', '.join(self.roots)}"
        )

    @staticmethod
    def _normalize(path: str) -> str:
        """Collapse duplicate slashes and drop a trailing slash, keeping any scheme."""
        if "://" in path:
            scheme, rest = path.split("://", 1)
            # Keep an empty authority (file:///tmp/x): dropping it would make "tmp" a host.
            lead = "/" if rest.startswith("/") else ""
            rest = lead + posixpath.normpath("/" + rest).lstrip("/") if rest else rest
            return f"{scheme}://{rest}"
        return posixpath.normpath(path) if path else path

    def _retry(self, op: str, path: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying transient failures, translating the last one.

        The first call runs bare: a retry policy is built only once it has failed (a local
        read takes a few microseconds, building one took longer).
        """
        try:
            return fn()
        except Exception as exc:
            first: list[BaseException] = [exc]

        def again() -> T:
            if first:  # the failure above is the policy's first attempt
                raise first.pop()
            return fn()

        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_attempt(self.max_retries + 1),
                wait=self.retry_wait,
                retry=tenacity.retry_if_exception(lambda e: is_transient(self._classify(e))),
                reraise=True,
            ):
                with attempt:
                    return again()
        except BaseException as exc:
            raise self._translate(op, path, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, op: str, path: str, exc: BaseException) -> BaseException:
        """Turn any failure into the StorageError subclass that matches, naming ``path``."""
        if isinstance(exc, StorageError | InvalidArgumentError):
            return exc
        if not isinstance(exc, Exception):
            return exc  # KeyboardInterrupt, SystemExit, ... pass through untouched
        mapped = self._classify(exc)
        if isinstance(mapped, StorageError):
            return mapped
        detail = f"{type(mapped).__name__}: {mapped}" if str(mapped) else type(mapped).__name__
        message = f"{op} failed for {path}: {detail}"
        cls: type[StorageError] = StorageError
        if isinstance(mapped, FileNotFoundError):
            cls = StorageFileNotFoundError
        elif isinstance(mapped, FileExistsError):
            cls = CommitConflictError
        elif is_transient(mapped):
            cls = TransientStorageError
        # OSError's str() shows only errno, strerror and filename once filename is set, so the
        # message goes in as strerror (with an errno) rather than as a lone argument.
        code = getattr(mapped, "errno", None)
        if not isinstance(code, int):
            code = {
                StorageFileNotFoundError: errno.ENOENT,
                CommitConflictError: errno.EEXIST,
            }.get(cls, errno.EIO)
        err = cls(code, message)
        err.filename = path
        return err

    def __repr__(self) -> str:
        return f"{type(self).__name__}(roots={list(self.roots)!r})"

    # Subclasses constructed from properties implement this classmethod.
    @classmethod
    def from_properties(
        cls, properties: dict[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> FileSystemClient:
        """Build a client from its ``etc/filesystem/NAME.properties`` values.

        Args:
            properties: The file's keys (``fs.client.type`` included).
            roots: The base directories the client is confined to.
            source: Where the properties came from, for error messages.
        """
        raise NotImplementedError(cls.__name__)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources (connections)."""

    def __enter__(self) -> FileSystemClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
