"""Streaming one task's state into a snapshot: the writer a worker holds.

Obtained from :meth:`SnapshotStore.open_task_writer`; used as a context manager, it commits on a
normal exit and aborts (deleting the attempt's file) on an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType

from exchange_store.filesystems.base import FileSystemClient, OutputStream
from exchange_store.format import RecordStreamWriter
from exchange_store.snapshots.model import SnapshotStateError, SnapshotTaskHandle

CommitTask = Callable[[SnapshotTaskHandle, str, int], None]
"""The store's per-task commit: (handle, path of the state file, its length)."""

__all__ = ["SnapshotTaskWriter"]


class SnapshotTaskWriter:
    """Streams one task's state into a snapshot; see :meth:`SnapshotStore.open_task_writer`.

    Memory stays bounded whatever the total size: bytes are cut into blocks, encoded on a small
    pool and streamed to storage (local: a ``.partial`` file; S3: a multipart upload).
    """

    def __init__(
        self,
        commit: CommitTask,
        client: FileSystemClient,
        handle: SnapshotTaskHandle,
        path: str,
        stream: OutputStream,
        writer: RecordStreamWriter,
    ) -> None:
        self._commit = commit
        self._client = client
        self._handle = handle
        self._path = path
        self._stream = stream
        self._writer = writer
        self._done = False
        self.bytes_in = 0

    @property
    def path(self) -> str:
        """The attempt's state file."""
        return self._path

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append ``chunk`` to the task's state.

        Raises:
            SnapshotStateError: the writer was already committed or aborted.
        """
        if self._done:
            raise SnapshotStateError(f"{self._path}: writer already closed")
        try:
            self._writer.write(chunk)
        except BaseException:
            self.abort()
            raise
        self.bytes_in += memoryview(chunk).nbytes

    def commit(self) -> None:
        """Make the state durable and commit it (an exclusive per-task marker).

        Raises:
            SnapshotExpiredError: the snapshot expired, was completed without it or deleted.
            CommitConflictError: another attempt of the task committed first.
            StorageError: the filesystem failed; the attempt's file is discarded.
        """
        if self._done:
            raise SnapshotStateError(f"{self._path}: writer already closed")
        self._done = True
        try:
            summary = self._writer.finish()
            self._stream.close()
        except BaseException:
            self._discard()
            raise
        self._commit(self._handle, self._path, summary.length)

    def abort(self) -> None:
        """Discard everything written; nothing of this attempt stays in storage."""
        if self._done:
            return
        self._done = True
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.abort()
        with contextlib.suppress(Exception):
            self._stream.abort()
        with contextlib.suppress(Exception):
            self._client.delete(self._path)

    def __enter__(self) -> SnapshotTaskWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
