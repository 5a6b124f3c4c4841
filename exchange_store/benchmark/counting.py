"""A filesystem client wrapper that counts the calls reaching the backend.

:class:`CountingFileSystemClient` is a :class:`FileSystemClient` whose primitives delegate to
another client's primitives, so confinement, retries and error translation still happen once
(in the wrapper) and every backend call, retries included, is counted by operation name.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = ["CountingFileSystemClient"]


class _CountingStream:
    def __init__(self, owner: CountingFileSystemClient, inner: OutputStream) -> None:
        self._owner = owner
        self._inner = inner

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._owner.count("stream_write", len(data))
        return self._inner.write(data)

    def close(self) -> None:
        self._owner.count("stream_close")
        self._inner.close()

    def abort(self) -> None:
        self._owner.count("stream_abort")
        self._inner.abort()


class CountingFileSystemClient(FileSystemClient):
    """Counts every backend call of ``inner`` (thread-safe).

    Attributes:
        calls: Operation name to number of calls.
        bytes_written: Bytes handed to streams and small-file writes.
        bytes_read: Bytes returned by reads.
        latency: Seconds slept before each call (injected latency per request).
    """

    def __init__(self, inner: FileSystemClient, *, latency: float = 0.0) -> None:
        super().__init__(inner.roots, max_retries=inner.max_retries)
        self.inner = inner
        self.latency = latency
        self.retry_wait = inner.retry_wait
        self.scheme = inner.scheme  # type: ignore[misc]
        self.supports_atomic_create = inner.supports_atomic_create  # type: ignore[misc]
        self.supports_multipart_cleanup = inner.supports_multipart_cleanup  # type: ignore[misc]
        self.supports_ranged_reads = inner.supports_ranged_reads  # type: ignore[misc]
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.bytes_written = 0
        self.bytes_read = 0

    def count(self, op: str, written: int = 0, read: int = 0) -> None:
        """Record one call, after ``latency`` seconds (an object store's round trip)."""
        if self.latency and op != "stream_write":  # a buffered write is no request
            time.sleep(self.latency)
        with self._lock:
            self.calls[op] += 1
            self.bytes_written += written
            self.bytes_read += read

    def snapshot(self) -> dict[str, int]:
        """The counters now (a copy)."""
        with self._lock:
            return dict(self.calls)

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.calls.clear()
            self.bytes_written = 0
            self.bytes_read = 0

    @property
    def requests(self) -> int:
        """Backend calls, not counting writes into open streams (buffered by the backend)."""
        with self._lock:
            return sum(n for op, n in self.calls.items() if op != "stream_write")

    # primitives: docstrings inherited

    def _native(self, path: str) -> str:
        return self.inner._native(path)

    def _uri(self, native: str) -> str:
        return self.inner._uri(native)

    def _open_write(self, native: str) -> OutputStream:
        self.count("create")
        return _CountingStream(self, self.inner._open_write(native))

    def _write_exclusive(self, native: str, data: bytes) -> None:
        self.count("write_exclusive", len(data))
        self.inner._write_exclusive(native, data)

    def _write_replace(self, native: str, data: bytes) -> None:
        self.count("write_file", len(data))
        self.inner._write_replace(native, data)

    def _read(self, native: str) -> bytes:
        data = self.inner._read(native)
        self.count("read_file", read=len(data))
        return data

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        data = self.inner._read_range(native, offset, length)
        self.count("read_range", read=len(data))
        return data

    def _info(self, native: str) -> FileInfo:
        self.count("info")
        return self.inner._info(native)

    def _list(self, native: str) -> list[FileInfo]:
        self.count("list")
        return self.inner._list(native)

    def _delete(self, native: str) -> None:
        self.count("delete")
        self.inner._delete(native)

    def _delete_recursive(self, native: str) -> None:
        self.count("delete_recursive")
        self.inner._delete_recursive(native)

    def _remove_empty_dir(self, native: str) -> bool:
        return self.inner._remove_empty_dir(native)

    def _abort_multipart_uploads(self, native: str, older_than: float | None) -> int:
        self.count("abort_multipart_uploads")
        return self.inner._abort_multipart_uploads(native, older_than)

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
