"""The reader side of an exchange: records of the committed attempts named by source handles.

Each handle is split into read units: one per data file, or, when the exchange preserves
order, one per (handle, task partition) so that task partition's blocks are read strictly in
order by one thread. ``exchange.source-concurrent-readers`` threads run the units (each unit
reads its blocks by ranged reads, neighbouring blocks coalesced by the format layer) and put
the records into a bounded queue; :meth:`ExchangeSource.read` takes one without waiting.

Records move between threads one block at a time: a reader thread queues the whole list of a
block's records under one lock acquisition, and a consumer moves a whole list into its ready
deque the same way, so the per-record cost of ``read()`` and iteration is one
``deque.popleft`` (atomic in CPython) and no lock.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from exchange_store._malloc import raise_malloc_thresholds
from exchange_store.errors import (
    ExchangeClosedError,
    IntegrityError,
    InvalidArgumentError,
    LostInputError,
    StorageError,
    StorageFileNotFoundError,
)
from exchange_store.exchange.formatting import format_options
from exchange_store.exchange.handles import ExchangeSourceHandle, SourceFile
from exchange_store.exchange.paths import lease_path
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.format import FormatOptions, read_copied_blocks, read_partition_blocks

__all__ = ["ExchangeSource"]

# Cores to plan threads for, at least 2; read once (os.cpu_count() reads /sys).
CORES = max(2, os.cpu_count() or 2)
_DECODERS = CORES
_DECODE_AHEAD_MAX = 16 << 20
_decoder_pool: ThreadPoolExecutor | None = None
# Reentrant: a source dropped unread is uncounted by __del__, which the collector may run
# in a thread that holds this lock already.
_decoder_lock = threading.RLock()


# Inline sources that a consumer is reading now (guarded by _decoder_lock). Decoding ahead
# on the pool pays only while fewer consumers than cores read: with more, each consumer
# decoding its own blocks keeps both cores busy, and the records it checks next are still
# in its core's cache (measured: 4 consumers on 2 cores read 10-20% faster inline).
_reading = 0


def _forget_decoders() -> None:
    """A forked child has none of its parent's threads: it starts its own pool."""
    global _decoder_pool, _decoder_lock, _reading
    _decoder_pool = None
    _decoder_lock = threading.RLock()
    _reading = 0


def _count_reader(delta: int) -> int:
    """Add ``delta`` to the inline sources being read; returns how many are read now."""
    global _reading
    with _decoder_lock:
        _reading += delta
        return _reading


os.register_at_fork(after_in_child=_forget_decoders)


def _decoders() -> ThreadPoolExecutor:
    """The process's decode threads, shared by every inline source (one per core)."""
    global _decoder_pool
    with _decoder_lock:
        if _decoder_pool is None:
            _decoder_pool = ThreadPoolExecutor(_DECODERS, thread_name_prefix="xs-decode")
        return _decoder_pool


HandleCheck = Callable[[ExchangeSourceHandle, tuple[SourceFile, ...]], None]
Unit = tuple[ExchangeSourceHandle, FormatOptions, tuple[SourceFile, ...], bool]
"""A read unit: its handle (for errors), options, files, and whether they share one path."""
_Current = tuple[ExchangeSourceHandle, tuple[SourceFile, ...], Iterator[list[bytes]]]


class ExchangeSource:
    """Reads records of source handles with read-ahead; see the module docstring.

    Thread-safe. Records are ``bytes`` exactly as written.

    Args:
        client: Filesystem client whose roots include the handles' files.
        handles: Initial handles.
        concurrent_readers: Reader threads.
        max_buffered_bytes: Read-ahead bound (one block is always let through).
        max_gap: Blocks of one file closer than this are fetched in one ranged read.
        check: Validates each handle before it is accepted (the manager's compatibility check).
        inline: Read in the consumer's thread, one block at a time, instead of on reader
            threads (local disks: page-cache reads are CPU work, and handing blocks between
            threads cost more than the read itself).
    """

    def __init__(
        self,
        client: FileSystemClient,
        handles: Iterable[ExchangeSourceHandle] = (),
        *,
        concurrent_readers: int = 4,
        max_buffered_bytes: int = 32 << 20,
        max_gap: int = 0,
        check: HandleCheck | None = None,
        inline: bool = False,
    ) -> None:
        raise_malloc_thresholds()
        self._queued: deque[Unit] = deque()
        self._lineup: deque[tuple[ExchangeSourceHandle, tuple[SourceFile, ...], Any]] = deque()
        self._current: _Current | None = None
        self._client = client
        self._check = check
        self._max_gap = max_gap
        self._limit = max(1, max_buffered_bytes)
        self._cond = threading.Condition()
        # Blocks queued by the reader threads (records, bytes), guarded by _cond.
        self._batches: deque[tuple[list[bytes], int]] = deque()
        self._buffered = 0
        # Records handed to consumers: popped without the lock (deque.popleft is atomic).
        self._ready: deque[bytes] = deque()
        self._ready_bytes = 0
        self._pending = 0
        self._no_more = False
        self._closed = False
        self._counted = False  # in _reading (inline mode, between first read and drain)
        self._error: BaseException | None = None
        self._options: dict[tuple[str, int | None, bytes | None], FormatOptions] = {}
        self._pool = (
            None
            if inline
            else ThreadPoolExecutor(
                max_workers=max(1, concurrent_readers), thread_name_prefix="xs-source"
            )
        )
        self.add_source_handles(handles)

    # ------------------------------------------------------------------ public API

    def add_source_handles(self, handles: Iterable[ExchangeSourceHandle]) -> None:
        """Add handles to read.

        Raises:
            InvalidArgumentError: not a source handle, a handle from another configuration, or
                the source is closed or was told there are no more handles.
        """
        handles = list(handles)
        pieces = []
        for handle in handles:
            if not isinstance(handle, ExchangeSourceHandle):
                raise InvalidArgumentError(
                    f"expected ExchangeSourceHandle, got {type(handle).__name__}"
                )
            files = handle.files
            if self._check is not None:
                self._check(handle, files)
            pieces.append((handle, files))
        with self._cond:
            if self._closed:
                raise InvalidArgumentError("add_source_handles() on a closed source")
            if self._no_more and handles:
                raise InvalidArgumentError(
                    "add_source_handles() after no_more_source_handles() was called"
                )
            units = self._plan(pieces)
            self._pending += len(units)
            if self._pool is None:
                self._queued.extend(units)
                return
        for handle, options, files, shared in units:
            self._pool.submit(self._run_unit, handle, options, files, shared)

    def no_more_source_handles(self) -> None:
        """Declare that no handle will be added; may be called more than once."""
        with self._cond:
            self._no_more = True
            self._cond.notify_all()

    def read(self) -> bytes | None:
        """One record, or None when none is ready now.

        Never waits for remote storage; on a local disk the next block is read in the calling
        thread.

        Raises:
            IntegrityError: stored data failed a check.
            StorageError: reading failed after retries.
            ExchangeClosedError: the exchange was closed under the read.
        """
        try:
            return self._ready.popleft()
        except IndexError:
            pass
        with self._cond:
            return self._take_locked()

    @property
    def is_finished(self) -> bool:
        """True once every record was returned after ``no_more_source_handles()``, or closed."""
        with self._cond:
            if self._closed:
                return True
            return self._drained_locked()

    @property
    def memory_usage(self) -> int:
        """Bytes of records read ahead and not yet returned (queued blocks, ready block)."""
        with self._cond:
            return self._buffered + (self._ready_bytes if self._ready else 0)

    def __iter__(self) -> Iterator[bytes]:
        self._check_iterable()
        return self

    def _check_iterable(self) -> None:
        if not self._no_more and not self._closed:
            raise InvalidArgumentError(
                "iterating an ExchangeSource on which no_more_source_handles() was never "
                "called would wait forever: call source.no_more_source_handles() after the "
                "last add_source_handles(), or poll source.read()"
            )

    def __next__(self) -> bytes:
        try:
            return self._ready.popleft()
        except IndexError:
            pass
        self._check_iterable()
        with self._cond:
            while True:
                record = self._take_locked()
                if record is not None:
                    return record
                if self._closed or self._drained_locked():
                    raise StopIteration
                self._cond.wait(timeout=1.0)

    def close(self) -> None:
        """Stop reading and release the threads. Idempotent."""
        with self._cond:
            self._closed = True
            self._batches.clear()
            self._ready.clear()
            self._buffered = 0
            self._ready_bytes = 0
            self._queued.clear()
            lineup = list(self._lineup)
            self._lineup.clear()
            current, self._current = self._current, None
            self._uncount_locked()
            self._cond.notify_all()
        if current is not None:
            close = getattr(current[2], "close", None)
            if callable(close):
                close()
        for _, _, work in lineup:
            if isinstance(work, Future):
                work.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __del__(self) -> None:
        # A source dropped mid-read without close() must not keep counting as a reader.
        if getattr(self, "_counted", False):
            self._counted = False
            with contextlib.suppress(Exception):
                _count_reader(-1)

    def __enter__(self) -> ExchangeSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _drained_locked(self) -> bool:
        return self._no_more and self._pending == 0 and not self._batches and not self._ready

    def _take_locked(self) -> bytes | None:
        """One record: from the ready deque, else the next queued block moves there first."""
        ready = self._ready
        while True:
            try:
                return ready.popleft()
            except IndexError:
                pass
            if self._error is not None:
                raise self._error
            if not self._batches:
                if self._pool is None and self._read_inline_locked():
                    continue
                return None
            records, size = self._batches.popleft()
            self._buffered -= size
            self._ready_bytes = size
            ready.extend(records)
            self._cond.notify_all()

    def _read_inline_locked(self) -> bool:
        """Read the next block of the current unit into the ready deque (inline mode).

        Returns:
            False when no unit is left.
        """
        if not self._counted and not self._closed:
            self._counted = True
            _count_reader(1)
        while not self._closed:
            if self._current is None:
                self._line_up_locked()
                if not self._lineup:
                    self._uncount_locked()
                    return False
                handle, files, work = self._lineup.popleft()
                if isinstance(work, Future):
                    work = _decoded_blocks(work)
                self._current = (handle, files, work)
                self._line_up_locked()
            handle, files, blocks = self._current
            try:
                records = next(blocks)
            except StopIteration:
                self._current = None
                self._pending -= 1
                continue
            except BaseException as exc:
                self._current = None
                self._pending -= 1
                self._error = self._read_error(handle, files, exc)
                raise self._error from exc
            if records:
                self._ready.extend(records)
                self._ready_bytes = sum(map(len, records))
                return True
        return False

    def _uncount_locked(self) -> None:
        if self._counted:
            self._counted = False
            _count_reader(-1)

    def _line_up_locked(self) -> None:
        """Queue the next units; decode small ones of a compressing codec ahead on threads.

        lz4 and zstandard release the GIL, so while fewer consumers than cores read, up to
        ``_DECODERS`` units of at most ``_DECODE_AHEAD_MAX`` stored bytes are read and decoded
        on other cores while the consumer takes records. Larger units, uncompressed data, and
        every unit while at least as many consumers as cores read, are read lazily inline.
        """
        while self._queued and self._in_flight() < _DECODERS:
            handle, options, files, shared = self._queued.popleft()
            size = sum(b.length for f in files for b in f.blocks)
            if (
                not options.codec.is_identity
                and size <= _DECODE_AHEAD_MAX
                and _count_reader(0) < _DECODERS
            ):
                blocks = self._unit_blocks(options, files, shared)
                work: Future[list[list[bytes]]] | Iterator[list[bytes]]
                work = _decoders().submit(list, blocks)
            else:
                work = self._unit_blocks(options, files, shared)
            self._lineup.append((handle, files, work))
            if not isinstance(work, Future):
                return  # read lazily in order: nothing to gain from lining up more

    def _in_flight(self) -> int:
        return sum(isinstance(w, Future) for _, _, w in self._lineup)

    def _unit_blocks(
        self, options: FormatOptions, files: tuple[SourceFile, ...], shared: bool
    ) -> Iterator[list[bytes]]:
        """Every block of one unit, file after file (inline mode)."""
        for blocks in self._reads(options, files, shared):
            try:
                yield from blocks
            finally:
                blocks.close()

    def _options_for(self, handle: ExchangeSourceHandle) -> FormatOptions:
        key = (handle.codec, handle.compression_level, handle.key)
        options = self._options.get(key)
        if options is None:
            # Decode in the reader threads themselves (they already run in parallel).
            options = self._options[key] = format_options(
                handle.codec, handle.compression_level, handle.key, workers=0
            )
        return options

    def _plan(
        self, pieces: list[tuple[ExchangeSourceHandle, tuple[SourceFile, ...]]]
    ) -> list[Unit]:
        """Read units: the pieces of one data file, across partitions, become one unit.

        Data files hold their partitions contiguously (and merged files hold small pieces of
        many files side by side), so the blocks a source reads from one file are neighbours:
        one unit reads them with one ranged read per ``max_coalesce`` bytes (gaps below
        ``max_gap`` read through) instead of one per partition and piece. Units run on
        ``concurrent_readers`` threads. With ``preserve_order`` a task partition's pieces are
        read in order by one unit, per handle.
        """
        units: list[Unit] = []
        by_path: dict[str, tuple[ExchangeSourceHandle, list[SourceFile]]] = {}
        for handle, files in pieces:
            if handle.preserve_order:
                units.extend(self._units(handle, files))
                continue
            for f in files:
                if f.blocks:
                    by_path.setdefault(f.path, (handle, []))[1].append(f)
        for handle, group in by_path.values():
            units.append((handle, self._options_for(handle), tuple(group), True))
        return units

    def _units(self, handle: ExchangeSourceHandle, files: tuple[SourceFile, ...]) -> list[Unit]:
        """Ordered units: one per task partition of the handle, its files in order."""
        options = self._options_for(handle)
        files = tuple(f for f in files if f.blocks)
        return [
            (handle, options, tuple(group), False)
            for _, group in itertools.groupby(files, key=lambda f: f.task_partition_id)
        ]

    def _read_error(
        self, handle: ExchangeSourceHandle, files: tuple[SourceFile, ...], exc: BaseException
    ) -> BaseException:
        """What a failed read raises: the exchange was closed, its data is lost, or ``exc``."""
        return self._closed_error(handle, exc) or _lost_input_error(handle, files, exc) or exc

    def _closed_error(
        self, handle: ExchangeSourceHandle, exc: BaseException
    ) -> ExchangeClosedError | None:
        """An ExchangeClosedError when the failed read's exchange has no lease any more."""
        if not isinstance(exc, StorageError | IntegrityError):
            return None
        q, e = handle.query_id, handle.exchange_id
        try:
            if any(self._client.exists(lease_path(b, q, e)) for b in handle.base_directories):
                return None
        except Exception:  # cannot tell: the read's own error stands
            return None
        return ExchangeClosedError(
            f"exchange {q}/{e} was closed (its lease is gone) while this source read "
            f"partition {handle.partition_id}: {exc}"
        )

    def _reads(
        self, options: FormatOptions, files: tuple[SourceFile, ...], shared: bool
    ) -> Iterator[Generator[list[bytes], None, None]]:
        """The block readers of a unit: one per file, or one for all pieces of a shared file."""
        if shared and len({(f.file_id, f.context) for f in files}) > 1:
            pieces = [(f.file_id, f.context, f.blocks) for f in files]
            yield read_copied_blocks(
                self._client, files[0].path, pieces, options, max_gap=self._max_gap
            )
            return
        if shared:  # one file's pieces of several partitions: their blocks in file order
            blocks = sorted((b for f in files for b in f.blocks), key=lambda b: b.offset)
            files = (files[0].with_blocks(blocks),)
        for file in files:
            yield read_partition_blocks(
                self._client,
                file.path,
                file.file_id,
                file.blocks,
                options,
                file.context,
                max_gap=self._max_gap,
            )

    def _run_unit(
        self,
        handle: ExchangeSourceHandle,
        options: FormatOptions,
        files: tuple[SourceFile, ...],
        shared: bool,
    ) -> None:
        try:
            for blocks in self._reads(options, files, shared):
                if self._closed or self._error is not None:
                    blocks.close()
                    return
                try:
                    for records in blocks:
                        if records and not self._put(records):
                            return
                finally:
                    blocks.close()
        except BaseException as exc:
            error = self._read_error(handle, files, exc)
            with self._cond:
                if self._error is None and not self._closed:
                    self._error = error
                self._cond.notify_all()
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _put(self, records: list[bytes]) -> bool:
        """Queue one block's records, waiting while the read-ahead is full; False once closed."""
        size = sum(map(len, records))
        with self._cond:
            while (
                not self._closed
                and self._error is None
                and self._buffered > 0
                and self._buffered + size > self._limit
            ):
                self._cond.wait()
            if self._closed or self._error is not None:
                return False
            self._batches.append((records, size))
            self._buffered += size
            self._cond.notify_all()
            return True


def _decoded_blocks(future: Future[list[list[bytes]]]) -> Iterator[list[bytes]]:
    """The blocks a decode thread read ahead, once it is done (its error raised here)."""
    yield from future.result()


def _lost_input_error(
    handle: ExchangeSourceHandle, files: tuple[SourceFile, ...], exc: BaseException
) -> LostInputError | None:
    """A failed read of committed data as a LostInputError naming its producers.

    A changed, truncated or missing committed file cannot heal by reading again: the
    producers' output is lost and a scheduler re-runs them (lineage).
    """
    if isinstance(exc, LostInputError) or not isinstance(
        exc, IntegrityError | StorageFileNotFoundError
    ):
        return None
    lost = tuple(
        sorted(
            {
                (handle.query_id, handle.exchange_id, f.task_partition_id, f.attempt_id)
                for f in files
            }
        )
    )
    producers = ", ".join(f"task partition {tp} attempt {a}" for _, _, tp, a in lost)
    error = LostInputError(
        f"committed data of exchange {handle.query_id}/{handle.exchange_id} is lost "
        f"(written by {producers}): {exc}",
        lost,
    )
    error.__cause__ = exc
    return error
