"""A client that wraps another one: the base of fault-injecting and counting wrappers.

:class:`ForwardingFileSystemClient` forwards every primitive to the wrapped client's primitive
through one hook, :meth:`~ForwardingFileSystemClient._forward`, and wraps streams through
:meth:`~ForwardingFileSystemClient._wrap_stream`. A wrapper overrides those two and nothing
else; confinement, retries and error translation run once, in the wrapper (the wrapped
client's own retries are not used), exactly as on a real backend's failures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = ["ForwardingFileSystemClient"]

T = TypeVar("T")


class ForwardingFileSystemClient(FileSystemClient):
    """Forwards every primitive to ``inner``; see the module docstring.

    Args:
        inner: The wrapped client.
        max_retries: Retries of this client (default: the wrapped client's).

    Attributes:
        inner: The wrapped client.
    """

    def __init__(self, inner: FileSystemClient, *, max_retries: int | None = None) -> None:
        super().__init__(
            inner.roots, max_retries=inner.max_retries if max_retries is None else max_retries
        )
        self.inner = inner
        self.retry_wait = inner.retry_wait
        # Capabilities are those of the wrapped backend.
        self.scheme = inner.scheme  # type: ignore[misc]
        self.supports_atomic_create = inner.supports_atomic_create  # type: ignore[misc]
        self.supports_multipart_cleanup = inner.supports_multipart_cleanup  # type: ignore[misc]
        self.supports_ranged_reads = inner.supports_ranged_reads  # type: ignore[misc]

    # ------------------------------------------------------------------ hooks

    def _forward(
        self, op: str, native: str, call: Callable[..., T], data: bytes | None = None
    ) -> T:
        """Run one primitive of the wrapped client.

        Args:
            op: The primitive's name (``open_write``, ``write_exclusive``, ``write_replace``,
                ``read``, ``read_range``, ``info``, ``list``, ``delete``, ``delete_recursive``,
                ``remove_empty_dir``, ``abort_multipart_uploads``).
            native: The backend path it acts on.
            call: Runs it: ``call(data)`` for the writes that take ``data``, else ``call()``.
            data: The bytes written, for ``write_exclusive`` and ``write_replace``.
        """
        return call(data) if data is not None else call()

    def _wrap_stream(self, native: str, stream: OutputStream) -> OutputStream:
        """The stream returned for a streaming write (default: the wrapped client's)."""
        return stream

    # ------------------------------------------------------------------ primitives

    def _native(self, path: str) -> str:
        return self.inner._native(path)

    def _uri(self, native: str) -> str:
        return self.inner._uri(native)

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        stream = self._forward("open_write", native, lambda: self.inner._open_write(native, sync))
        return self._wrap_stream(native, stream)

    def _write_exclusive(self, native: str, data: bytes) -> None:
        self._forward(
            "write_exclusive", native, lambda d: self.inner._write_exclusive(native, d), data
        )

    def _write_replace(self, native: str, data: bytes) -> None:
        self._forward("write_replace", native, lambda d: self.inner._write_replace(native, d), data)

    def _read(self, native: str) -> bytes:
        return self._forward("read", native, lambda: self.inner._read(native))

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        return self._forward(
            "read_range", native, lambda: self.inner._read_range(native, offset, length)
        )

    def _info(self, native: str) -> FileInfo:
        return self._forward("info", native, lambda: self.inner._info(native))

    def _list(self, native: str) -> list[FileInfo]:
        return self._forward("list", native, lambda: self.inner._list(native))

    def _delete(self, native: str) -> None:
        self._forward("delete", native, lambda: self.inner._delete(native))

    def _delete_recursive(self, native: str) -> None:
        self._forward("delete_recursive", native, lambda: self.inner._delete_recursive(native))

    def _remove_empty_dir(self, native: str) -> bool:
        return self._forward(
            "remove_empty_dir", native, lambda: self.inner._remove_empty_dir(native)
        )

    def _abort_multipart_uploads(self, native: str, older_than: float | None) -> int:
        return self._forward(
            "abort_multipart_uploads",
            native,
            lambda: self.inner._abort_multipart_uploads(native, older_than),
        )

    def _classify(self, exc: BaseException) -> BaseException:
        return self.inner._classify(exc)

    def close(self) -> None:
        """Close the wrapped client."""
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else a caller expects of the backend client (its own helpers).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
