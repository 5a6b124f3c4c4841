"""A filesystem client wrapper that counts the calls reaching the backend.

:class:`CountingFileSystemClient` is a forwarding client whose primitives delegate to
another client's primitives, so confinement, retries and error translation still happen once
(in the wrapper) and every backend call, retries included, is counted by operation name.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from exchange_store.filesystems.base import FileSystemClient, OutputStream
from exchange_store.filesystems.forwarding import ForwardingFileSystemClient

__all__ = ["CountingFileSystemClient"]

T = TypeVar("T")


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


_NAMES = {"open_write": "create", "write_replace": "write_file", "read": "read_file"}


class CountingFileSystemClient(ForwardingFileSystemClient):
    """Counts every backend call of ``inner`` (thread-safe).

    Attributes:
        calls: Operation name to number of calls.
        bytes_written: Bytes handed to streams and small-file writes.
        bytes_read: Bytes returned by reads.
        latency: Seconds slept before each call (injected latency per request).
    """

    def __init__(self, inner: FileSystemClient, *, latency: float = 0.0) -> None:
        super().__init__(inner)
        self.latency = latency
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

    def _forward(
        self, op: str, native: str, call: Callable[..., T], data: bytes | None = None
    ) -> T:
        if op == "remove_empty_dir":  # no request on object stores; not counted
            return super()._forward(op, native, call, data)
        name = _NAMES.get(op, op)
        if data is not None:
            self.count(name, written=len(data))
            return call(data)
        result = call()
        if isinstance(result, bytes):
            self.count(name, read=len(result))
        else:
            self.count(name)
        return result

    def _wrap_stream(self, native: str, stream: OutputStream) -> OutputStream:
        return _CountingStream(self, stream)
