"""The worker side of an exchange: one attempt of one task partition writing its output.

Records are buffered per output partition; a partition's buffer becomes a block when it
reaches ``exchange.block-size`` and stays in memory. When all buffers together exceed half of
``exchange.sink-max-buffer-size``, and at :meth:`ExchangeSink.finish`, everything buffered is
*spilled*: written in partition order, so memory stays bounded whatever the partition count
and each spill holds its partitions contiguously (an attempt that fits in the budget writes
partition-contiguous data files, as a sort shuffle's map output). Blocks go to one writer
thread (FIFO) that feeds the format layer's :class:`~exchange_store.format.RecordFileWriter`
(which encodes on its own small pool) and rotates data files at
``exchange.sink-max-file-size``. Blocks waiting for the writer may hold the other half of the
budget; beyond it :meth:`ExchangeSink.add` blocks (back-pressure).

Runs: engines run the same instance handle more than once, in sequence or at once. Each sink
is one *run* with a random run id and writes only under ``{attempt}/{run}/``, so a run never
touches another run's files.

Commit and fencing (:mod:`exchange_store.exchange.commit`): :meth:`ExchangeSink.finish` flushes
everything, closes the data files and publishes one sealed manifest naming its run with an
exclusive create; a run that finds another run's commit returns that commit's receipt and
deletes its own files. A run of a closed exchange raises
:class:`~exchange_store.errors.ExchangeClosedError` and leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from types import TracebackType
from typing import Final

from exchange_store._malloc import raise_malloc_thresholds
from exchange_store.errors import (
    CommitStateUnknownError,
    ExchangeClosedError,
    InvalidArgumentError,
    StorageError,
)
from exchange_store.exchange.commit import RunFence, commit_run
from exchange_store.exchange.formatting import format_options
from exchange_store.exchange.handles import ExchangeSinkInstanceHandle, ExchangeSinkReceipt
from exchange_store.exchange.manifest import (
    Manifest,
    ManifestFile,
)
from exchange_store.exchange.paths import (
    data_file_context,
    data_file_name,
    data_file_path,
    new_run_id,
    run_dir,
)
from exchange_store.filesystems.base import FileSystemClient, OutputStream
from exchange_store.format import RecordFileWriter

__all__ = ["RECORD_OVERHEAD", "ExchangeSink"]

_log = logging.getLogger(__name__)

RECORD_OVERHEAD: Final = 8
"""Bytes charged per record on top of its length (framing), for buffer accounting."""

Record = bytes | bytearray | memoryview

_OPEN, _FINISHING, _FINISHED, _ABORTED, _FAILED = (
    "open",
    "finishing",
    "finished",
    "aborted",
    "failed",
)
_RUNNING = (_OPEN, _FINISHING)


def _as_record(data: object, partition_id: object) -> tuple[Record, int]:
    """Take a bytes-like object without copying when possible."""
    if isinstance(data, bytes):
        return data, len(data)
    if isinstance(data, bytearray):
        return data, len(data)
    if isinstance(data, memoryview):
        if data.c_contiguous:
            view = data if (data.format == "B" and data.ndim == 1) else data.cast("B")
            return view, view.nbytes
        copied = data.tobytes()
        return copied, len(copied)
    raise InvalidArgumentError(
        f"record for partition {partition_id!r} must be bytes, bytearray or memoryview, "
        f"not {type(data).__name__}"
    )


class ExchangeSink:
    """Writes one attempt of one task partition; see the module docstring.

    Thread-safe: ``add`` may be called from several threads (records of one partition keep
    the order in which the calls returned).

    Args:
        client: Filesystem client whose roots include the attempt's base directory.
        instance: The attempt's handle from ``Exchange.instantiate_sink``.
        max_buffer_size: ``exchange.sink-max-buffer-size``.
        writer_threads: Encoding threads (``exchange.writer-threads``).
        fsync: Flush data files to stable storage before the commit
            (``exchange.sink-fsync-data-files``); the manifest is always made durable.
        min_saving: Keep a compressed block only when it is at least this fraction smaller
            (``exchange.compression-min-saving``).
    """

    def __init__(
        self,
        client: FileSystemClient,
        instance: ExchangeSinkInstanceHandle,
        *,
        max_buffer_size: int = 64 << 20,
        writer_threads: int = 2,
        fsync: bool = False,
        min_saving: float = 0.0,
    ) -> None:
        raise_malloc_thresholds()
        self._client = client
        self._fsync = fsync
        self._instance = instance
        self._run_id = new_run_id()
        self._run_directory = run_dir(instance.attempt_directory, self._run_id)
        self._name = (
            f"{instance.query_id}/{instance.exchange_id} task partition "
            f"{instance.task_partition_id} attempt {instance.attempt_id} run {self._run_id}"
        )
        self._fence = RunFence(client, instance, self._name)
        self._options = format_options(
            instance.codec,
            instance.compression_level,
            instance.key,
            block_size=instance.block_size,
            # Plain blocks (no codec, no key) are only checksummed: no pool needed.
            workers=0 if instance.codec == "NONE" and instance.key is None else writer_threads,
            max_pending_blocks=max(2, 2 * writer_threads),
            min_saving=min_saving,
        )
        self._block_size = max(1, instance.block_size)
        self._buffer_limit = max(1, max_buffer_size // 2)
        self._inflight_limit = max(1, max_buffer_size - self._buffer_limit)
        self._cond = threading.Condition()
        self._buffers: dict[int, list[Record]] = {}
        self._sizes: dict[int, int] = {}
        # Full blocks held until the next spill, so that a spill is in partition order.
        self._sealed: dict[int, list[tuple[list[Record], int]]] = {}
        self._buffered = 0
        self._inflight = 0
        self._queue: deque[tuple[int, list[Record], int]] = deque()
        self._stopping = False
        self._state = _OPEN
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        # Owned by the writer thread until it is joined.
        self._writer: RecordFileWriter | None = None
        self._stream: OutputStream | None = None
        self._file_index = 0
        self._files: list[ManifestFile] = []
        self._manifest: Manifest | None = None
        self._receipt: ExchangeSinkReceipt | None = None

    # ------------------------------------------------------------------ public API

    @property
    def instance(self) -> ExchangeSinkInstanceHandle:
        """The attempt's handle."""
        return self._instance

    @property
    def memory_usage(self) -> int:
        """Bytes held now: buffered records, blocks waiting for the writer, blocks encoding."""
        with self._cond:
            held = self._buffered + self._inflight
        writer = self._writer
        if writer is not None:
            held += writer.pending_bytes
        return held

    @property
    def run_id(self) -> str:
        """This run's id (its files live under ``{attempt}/{run}/``)."""
        return self._run_id

    @property
    def manifest(self) -> Manifest | None:
        """What the attempt committed (this run's or another's), once :meth:`finish` returned."""
        return self._manifest

    @property
    def receipt(self) -> ExchangeSinkReceipt | None:
        """The receipt :meth:`finish` returned, once it did."""
        return self._receipt

    @property
    def is_finished(self) -> bool:
        """Whether :meth:`finish` committed the attempt."""
        return self._state == _FINISHED

    def add(self, partition_id: int, data: bytes | bytearray | memoryview) -> None:
        """Append one record to output partition ``partition_id``.

        Ownership of ``data`` passes to the sink: do not change it afterwards. May block while
        the writer catches up. Ignored after :meth:`abort`.

        Raises:
            InvalidArgumentError: bad partition id, not bytes-like, larger than
                ``exchange.max-page-storage-size``, or the sink already finished.
            StorageError: writing a previous block failed (abort the sink).
        """
        if self._state == _ABORTED:
            return
        count = self._instance.output_partition_count
        if (
            isinstance(partition_id, bool)
            or not isinstance(partition_id, int)
            or not 0 <= partition_id < count
        ):
            raise InvalidArgumentError(
                f"invalid partition_id {partition_id!r} for {self._name}: the exchange has "
                f"{count} output partitions (0 to {count - 1})"
            )
        record, size = _as_record(data, partition_id)
        limit = self._instance.max_page_storage_size
        if size > limit:
            raise InvalidArgumentError(
                f"record of {size} bytes for partition {partition_id} of {self._name} is larger "
                f"than exchange.max-page-storage-size ({limit} bytes)"
            )
        cost = size + RECORD_OVERHEAD
        with self._cond:
            if self._state == _ABORTED:
                return
            if self._state != _OPEN:
                raise InvalidArgumentError(f"add() on sink {self._name} after finish()")
            if self._error is not None:
                if isinstance(self._error, ExchangeClosedError):
                    return  # dropped: finish() reports the closed exchange
                raise self._error
            buffer = self._buffers.get(partition_id)
            if buffer is None:
                buffer = self._buffers[partition_id] = []
                self._sizes[partition_id] = 0
            buffer.append(record)
            self._sizes[partition_id] += cost
            self._buffered += cost
            if self._sizes[partition_id] >= self._block_size:
                self._seal_locked(partition_id)
            if self._buffered > self._buffer_limit:
                self._spill_locked()

    def finish(self) -> ExchangeSinkReceipt:
        """Commit the attempt: close the data files, then one exclusive manifest write.

        Idempotent once it succeeded. When another run of the same instance committed first,
        returns that commit's receipt and deletes this run's files. When it raises, nothing of
        this run stays visible.

        Returns:
            The receipt of the attempt's commit, for ``Exchange.sink_finished``.

        Raises:
            InvalidArgumentError: the sink was aborted.
            ExchangeClosedError: the exchange was closed; this run's files were removed.
            StorageError: storage failed; the attempt is not committed by this run.
            CommitStateUnknownError: the manifest write failed and could not be read back.
            IntegrityError: the manifest another run committed fails its checks.
        """
        with self._cond:
            if self._state == _FINISHED:
                assert self._receipt is not None
                return self._receipt
            if self._state == _ABORTED:
                raise InvalidArgumentError(f"finish() on sink {self._name} after abort()")
            if self._state != _OPEN:
                raise InvalidArgumentError(f"finish() on sink {self._name} that is {self._state}")
            self._state = _FINISHING
        try:
            self._drain()
            manifest, sealed = commit_run(
                self._client,
                self._instance,
                self._run_id,
                self._files,
                self._fence,
                discard=self._discard,
                name=self._name,
            )
        except BaseException as exc:
            with self._cond:
                if self._state != _ABORTED:
                    self._state = _FAILED
                self._cond.notify_all()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join()
            if isinstance(exc, CommitStateUnknownError):
                self._discard(delete=False)  # the manifest may name this run: keep its files
                raise
            self._discard()
            closed = isinstance(exc, ExchangeClosedError) or (
                isinstance(exc, StorageError) and not self._fence.is_open_or_unknown()
            )
            if closed:
                self._fence.prune()
                raise self._fence.closed_error() from None
            raise
        with self._cond:
            aborted = self._state == _ABORTED
            if not aborted:
                self._state = _FINISHED
        if aborted and manifest.run_id != self._run_id:
            raise InvalidArgumentError(f"sink {self._name} was aborted during finish()")
        # Aborted after this run committed: the commit stands (a reader may already use it).
        with self._cond:
            self._state = _FINISHED
        self._manifest = manifest
        self._receipt = manifest.receipt(sealed)
        return self._receipt

    def _drain(self) -> None:
        """Flush every buffer, wait for the writer thread, close the last data file."""
        with self._cond:
            if self._error is not None:
                raise self._error
            self._spill_locked()
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._state == _ABORTED:
                raise InvalidArgumentError(f"sink {self._name} was aborted during finish()")
        if self._writer is not None:
            self._close_file()

    def abort(self) -> None:
        """Discard this run and delete what it wrote. Idempotent; no-op after finish().

        Never touches another run's files, nor the attempt's manifest.
        """
        with self._cond:
            if self._state in (_ABORTED, _FINISHED):
                return
            was_finishing = self._state == _FINISHING
            self._state = _ABORTED
            self._buffers.clear()
            self._sizes.clear()
            self._sealed.clear()
            self._queue.clear()
            self._buffered = 0
            self._inflight = 0
            self._cond.notify_all()
        if was_finishing:
            return  # finish() sees the abort and cleans up itself
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._discard()

    def __enter__(self) -> ExchangeSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"ExchangeSink({self._name}, state={self._state})"

    # ------------------------------------------------------------------ buffering

    def _seal_locked(self, partition: int) -> None:
        """Close one partition's buffer as a block, held until the next spill."""
        records = self._buffers.pop(partition)
        size = self._sizes.pop(partition)
        self._sealed.setdefault(partition, []).append((records, size))

    def _spill_locked(self) -> None:
        """Write everything buffered (one spill): partitions in order, each one contiguous.

        Called when the buffers pass half of ``exchange.sink-max-buffer-size`` and by
        :meth:`finish`. An attempt whose output fits in the budget is one spill, so each data
        file holds its partitions in order and a reader fetches a partition (or a range of
        neighbouring partitions) with one ranged read.
        """
        for partition in sorted(self._sealed.keys() | self._buffers.keys()):
            for records, size in self._sealed.pop(partition, ()):
                if not self._queue_block_locked(partition, records, size):
                    return
            if partition in self._buffers:
                records = self._buffers.pop(partition)
                size = self._sizes.pop(partition)
                if not self._queue_block_locked(partition, records, size):
                    return

    def _queue_block_locked(self, partition: int, records: list[Record], size: int) -> bool:
        """Hand one block to the writer (lock held); False once the sink was aborted."""
        while (
            self._inflight > 0
            and self._inflight + size > self._inflight_limit
            and self._error is None
            and self._state != _ABORTED
        ):
            self._cond.wait()
        if self._state == _ABORTED:
            return False  # abort() already reset the accounting
        self._buffered -= size
        if self._error is not None:
            raise self._error
        self._queue.append((partition, records, size))
        self._inflight += size
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"xs-sink:{self._name}", daemon=True
            )
            self._thread.start()
        self._cond.notify_all()
        return True

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and self._state in _RUNNING:
                    self._cond.wait()
                if self._state not in _RUNNING or not self._queue:
                    return
                partition, records, size = self._queue.popleft()
            try:
                self._write_block(partition, records)
            except BaseException as exc:
                with self._cond:
                    if self._error is None:
                        self._error = exc
                    self._queue.clear()
                    self._inflight = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._inflight = max(0, self._inflight - size)
                # Wake a waiting add() only once half the budget is free (or nothing is left),
                # not after every block: each wake-up costs the writer a GIL hand-off.
                if not self._queue or self._inflight <= self._inflight_limit // 2:
                    self._cond.notify_all()

    def _write_block(self, partition: int, records: list[Record]) -> None:
        writer = self._writer
        if (
            writer is not None
            and writer.bytes_written + writer.pending_bytes >= self._instance.sink_max_file_size
        ):
            self._close_file()
            writer = None
        if writer is None:
            writer = self._open_file()
        writer.write_block(partition, records)

    def _open_file(self) -> RecordFileWriter:
        inst = self._instance
        if self._file_index == 0:
            self._fence.check()  # a late run must not recreate a closed exchange
        path = data_file_path(self._run_directory, self._file_index)
        context = data_file_context(
            inst.query_id,
            inst.exchange_id,
            inst.task_partition_id,
            inst.attempt_id,
            self._run_id,
            self._file_index,
        )
        stream = self._client.create(path, sync=self._fsync)
        self._stream = stream
        self._writer = RecordFileWriter(stream, self._options, context)
        return self._writer

    def _close_file(self) -> None:
        writer, stream = self._writer, self._stream
        assert writer is not None and stream is not None
        summary = writer.finish()
        stream.close()
        self._writer = None
        self._stream = None
        self._files.append(
            ManifestFile(data_file_name(self._file_index), self._file_index, summary)
        )
        self._file_index += 1

    # ------------------------------------------------------------------ cleanup

    def _discard(self, *, delete: bool = True) -> None:
        """Drop pending work and delete this run's directory (best effort, logged).

        Args:
            delete: Delete what this run wrote.
        """
        writer, stream = self._writer, self._stream
        self._writer = None
        self._stream = None
        if writer is not None:
            try:
                writer.abort()
            except Exception as exc:  # cleanup continues whatever happens
                _log.debug("abort of the format writer of %s failed: %s", self._name, exc)
        if stream is not None:
            try:
                stream.abort()
            except Exception as exc:
                _log.warning("abort of a data file of %s failed: %s", self._name, exc)
        if not delete:
            return
        try:
            self._client.delete_recursive(self._run_directory)
        except Exception as exc:
            _log.warning(
                "could not delete %s (the exchange's close() removes it): %s",
                self._run_directory,
                exc,
            )
