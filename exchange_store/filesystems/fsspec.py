"""A client for any other fsspec protocol (``gs``, ``abfs``, ``memory``, ...).

Keys: ``fsspec.protocol`` (default: the scheme of the roots) and ``fsspec.option.<name>``,
passed to ``fsspec.filesystem(protocol, <name>=value)`` as strings.

Atomicity (generic protocols, ``supports_atomic_create = False``):
    * ``create``: bytes go to ``<path>.<uuid>.partial``, moved into place on ``close()``
      (``fs.mv``: a rename where the protocol has one, else copy then delete; readers of
      ``<path>`` see nothing or the whole file). ``abort()`` deletes the partial file.
    * ``write_exclusive``: check then write; a concurrent writer can race it.
    * ``write_file``: ``fs.pipe_file`` (atomic on object stores).

``memory`` (fsspec's process-global in-memory store) is served by
:class:`MemoryFsspecFileSystemClient`, whose exclusive create is atomic under a process lock.
Google Cloud Storage (``gs``/``gcs``, gcsfs) and Azure Blob Storage (``abfs``/``abfss``/``az``,
adlfs) are served by :class:`ObjectStoreFsspecFileSystemClient`: an upload is invisible until
it completes, so streaming writes go straight to their key, and exclusive create is the
service's conditional upload (GCS ``ifGenerationMatch=0``, Azure ``If-None-Match: *``).
``*.partial`` files are never listed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exchange_store.errors import BackendNotInstalledError, ConfigurationError, InvalidArgumentError
from exchange_store.filesystems._partial import PARTIAL_SUFFIX, MoveOnCloseStream
from exchange_store.filesystems._schemas import FSSPEC_OPTION_PREFIX, FSSPEC_SCHEMA
from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = [
    "FsspecFileSystemClient",
    "MemoryFsspecFileSystemClient",
    "ObjectStoreFsspecFileSystemClient",
    "client_class_for",
    "fsspec_options",
]


def fsspec_options(values: Mapping[str, Any]) -> dict[str, str]:
    """The ``fsspec.option.<name>`` keys as ``{name: value}`` storage options (pure)."""
    return {
        key[len(FSSPEC_OPTION_PREFIX) :]: str(value)
        for key, value in values.items()
        if key.startswith(FSSPEC_OPTION_PREFIX) and len(key) > len(FSSPEC_OPTION_PREFIX)
    }


class FsspecFileSystemClient(FileSystemClient):
    """A client over an fsspec filesystem (see the module docstring for atomicity)."""

    scheme = "fsspec"
    supports_atomic_create: ClassVar[bool] = False
    supports_ranged_reads = True

    def __init__(
        self,
        roots: Sequence[str],
        *,
        protocol: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> None:
        """Create a client.

        Args:
            roots: Base directories as ``protocol://...`` URIs.
            protocol: The fsspec protocol; default: the scheme of the roots.
            storage_options: Keyword arguments for ``fsspec.filesystem(protocol, ...)``.
            max_retries: Retries of a failing operation (default: the base class's).
        """
        schemes = {r.split("://", 1)[0] for r in roots if "://" in r}
        if len(schemes) != 1 or any("://" not in r for r in roots):
            raise InvalidArgumentError(
                f"base directories {', '.join(roots)} must be URIs with one scheme"
            )
        self.protocol = protocol or schemes.pop()
        kwargs = {} if max_retries is None else {"max_retries": max_retries}
        super().__init__(roots, **kwargs)
        try:
            import fsspec

            self.fs: Any = fsspec.filesystem(
                self.protocol, skip_instance_cache=True, **dict(storage_options or {})
            )
        except ImportError as exc:
            raise BackendNotInstalledError(
                f"fsspec protocol {self.protocol!r} needs a package that is not installed: {exc}"
            ) from exc
        except ValueError as exc:  # unknown protocol
            raise InvalidArgumentError(f"fsspec protocol {self.protocol!r}: {exc}") from exc
        pairs = [(self._strip(r), r) for r in self.roots]
        self._root_forms = sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    @classmethod
    def from_properties(
        cls, properties: dict[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> FsspecFileSystemClient:
        """Build a client from ``etc/filesystem/NAME.properties`` (``fsspec.*`` keys)."""
        values = FSSPEC_SCHEMA.parse(properties, source)
        protocol = values.get("fsspec.protocol")
        if not protocol:
            protocol = roots[0].split("://", 1)[0] if roots and "://" in roots[0] else None
        klass = client_class_for(protocol, cls)
        try:
            return klass(roots, protocol=protocol, storage_options=fsspec_options(values))
        except (InvalidArgumentError, TypeError) as exc:
            raise ConfigurationError(f"{source}: {exc}") from None
        except BackendNotInstalledError as exc:
            raise BackendNotInstalledError(f"{source}: {exc}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(protocol={self.protocol!r}, roots={list(self.roots)!r})"

    # ------------------------------------------------------------------ paths

    def _strip(self, path: str) -> str:
        return str(self.fs._strip_protocol(path)).rstrip("/") or "/"

    def _native(self, path: str) -> str:
        return self._strip(path)

    def _uri(self, native: str) -> str:
        native = native.rstrip("/") or "/"
        for nroot, root in self._root_forms:
            if native == nroot:
                return root
            if native.startswith(nroot.rstrip("/") + "/"):
                return root.rstrip("/") + "/" + native[len(nroot.rstrip("/")) + 1 :]
        return f"{self.protocol}://{native.lstrip('/')}"

    # ------------------------------------------------------------------ primitives

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        return MoveOnCloseStream(
            native, lambda t: self.fs.open(t, "wb"), self.fs.mv, self.fs.rm_file
        )

    def _write_exclusive(self, native: str, data: bytes) -> None:
        if self.fs.exists(native):
            raise FileExistsError(native)
        self.fs.pipe_file(native, data)

    def _write_replace(self, native: str, data: bytes) -> None:
        self.fs.pipe_file(native, data)

    def _read(self, native: str) -> bytes:
        return bytes(self.fs.cat_file(native))

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        size = int(self.fs.size(native))
        if offset >= size:
            return b""
        return bytes(self.fs.cat_file(native, start=offset, end=min(offset + length, size)))

    def _entry(self, info: Mapping[str, Any]) -> FileInfo:
        is_dir = info.get("type") == "directory"
        mtime = info.get("mtime", info.get("created"))
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        return FileInfo(
            path=self._uri(str(info["name"])),
            size=0 if is_dir else int(info.get("size") or 0),
            mtime=float(mtime) if isinstance(mtime, int | float) else None,
            is_dir=is_dir,
        )

    def _info(self, native: str) -> FileInfo:
        return self._entry(self.fs.info(native))

    def _list(self, native: str) -> list[FileInfo]:
        try:
            entries = self.fs.ls(native, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for info in entries:
            name = str(info["name"]).rstrip("/")
            if name == native.rstrip("/") or name.endswith(PARTIAL_SUFFIX):
                continue  # the path itself (ls of a file) or an unfinished write
            out.append(self._entry(info))
        return out

    def _delete(self, native: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(native)

    def _delete_recursive(self, native: str) -> None:
        if not self.fs.exists(native):
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(native, recursive=True)


class MemoryFsspecFileSystemClient(FsspecFileSystemClient):
    """fsspec's ``memory`` protocol, with exclusive create made atomic by a process lock.

    The memory store is global to the process, so the lock is too.
    """

    supports_atomic_create: ClassVar[bool] = True
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _write_exclusive(self, native: str, data: bytes) -> None:
        with self._lock:
            super()._write_exclusive(native, data)

    def _write_replace(self, native: str, data: bytes) -> None:
        with self._lock:
            super()._write_replace(native, data)


_OBJECT_STORE_PROTOCOLS = frozenset({"gs", "gcs", "abfs", "abfss", "az"})


def _is_precondition_failure(exc: BaseException) -> bool:
    """Whether an upload failed because the object exists (HTTP 412 or the SDK's own error)."""
    if isinstance(exc, FileExistsError):
        return True
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    return code == 412 or type(exc).__name__ in ("ResourceExistsError", "PreconditionFailed")


class _DirectUpload:
    """A streaming upload to the final key: the object appears when ``close()`` completes it."""

    def __init__(self, native: str, f: Any) -> None:
        self._native = native
        self._f = f
        self._done = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._f.write(data)
        return len(data)

    def close(self) -> None:
        if self._done:
            return
        try:
            self._f.close()
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):
            self._f.discard()  # GCS: cancels the resumable upload session
        # Never complete it: uncommitted blocks (Azure) and sessions (GCS) expire unseen.
        self._f.closed = True


class ObjectStoreFsspecFileSystemClient(FsspecFileSystemClient):
    """Google Cloud Storage and Azure Blob Storage through gcsfs and adlfs.

    Writes are atomic without a rename: a streamed upload (GCS resumable upload, Azure block
    list) becomes visible only when completed, so ``create`` writes to the final key and
    ``abort`` never completes it. Exclusive create is a conditional upload, atomic against any
    concurrent writer on the real services; the client also checks for the object first, so
    emulators that ignore preconditions (``gcp-storage-emulator``) still refuse a second
    create made after the first.
    """

    supports_atomic_create: ClassVar[bool] = True

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        return _DirectUpload(native, self.fs.open(native, "wb"))

    def _write_exclusive(self, native: str, data: bytes) -> None:
        if self.fs.exists(native):
            raise FileExistsError(native)
        try:
            self.fs.pipe_file(native, data, mode="create")
        except Exception as exc:
            if _is_precondition_failure(exc):
                raise FileExistsError(native) from exc
            raise


def client_class_for(
    protocol: str | None, default: type[FsspecFileSystemClient]
) -> type[FsspecFileSystemClient]:
    """The client class serving an fsspec protocol."""
    if protocol == "memory":
        return MemoryFsspecFileSystemClient
    if protocol in _OBJECT_STORE_PROTOCOLS:
        return ObjectStoreFsspecFileSystemClient
    return default
