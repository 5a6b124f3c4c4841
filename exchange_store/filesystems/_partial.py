"""Streaming writes into a ``.partial`` file that is moved into place on close.

Backends without an atomic "publish on close" (HDFS, generic fsspec) write
``<path>.<uuid>.partial`` and rename it when the stream closes; ``abort`` removes it. Listings
hide partial files, and ``gc`` removes those left by a killed writer.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["PARTIAL_SUFFIX", "MoveOnCloseStream", "partial_name"]

PARTIAL_SUFFIX = ".partial"


def partial_name(native: str) -> str:
    """A fresh temporary name beside ``native``."""
    return f"{native}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"


class MoveOnCloseStream:
    """An :class:`~exchange_store.filesystems.base.OutputStream` over a backend file handle.

    Args:
        native: Where the file appears on close.
        open_tmp: Opens a path for writing; returns an object with ``write`` and ``close``.
        move: Moves the finished temporary file to ``native``.
        remove: Deletes the temporary file (missing is fine).
    """

    def __init__(
        self,
        native: str,
        open_tmp: Callable[[str], Any],
        move: Callable[[str, str], Any],
        remove: Callable[[str], Any],
    ) -> None:
        self._native = native
        self._tmp = partial_name(native)
        self._move = move
        self._remove = remove
        self._file: Any = open_tmp(self._tmp)
        self._done = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._done:
            raise ValueError(f"write to a closed stream for {self._native}")
        self._file.write(data)
        return len(data)

    def close(self) -> None:
        if self._done:
            return
        try:
            self._file.close()
            self._move(self._tmp, self._native)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            with contextlib.suppress(Exception):
                self._file.close()
        finally:
            with contextlib.suppress(OSError):
                self._remove(self._tmp)
