"""The coordinator side of one exchange: sinks, attempts, deduplication, source handles.

Deduplication: for each task partition the first attempt reported by :meth:`Exchange.sink_finished`
is selected and only its committed manifest is ever read. With the receipt that the attempt's
``finish()`` returned, ``sink_finished`` checks the sealed manifest it carries (no storage
request); without one it reads the manifest at once: an attempt that did not commit is refused
there (an error naming the exchange, task partition and attempt) and is not selected. When
storage cannot be read at that moment the attempt is selected and the check is repeated by
:meth:`Exchange.get_source_handles`. Data of every other attempt (and of every run of the
selected attempt but the committed one) is never read and is deleted by :meth:`Exchange.close`.

Creation is exclusive across coordinators: the exchange's first ``_lease`` is created with an
exclusive write, so a second ``create_exchange`` of the same context, from any manager on the
same storage, is refused while the exchange exists.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from exchange_store.errors import (
    AttemptNotCommittedError,
    CommitConflictError,
    ExchangeStateError,
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
    StorageFileNotFoundError,
)
from exchange_store.exchange.descriptor import (
    ExchangeDescriptor,
    descriptor_context,
    read_descriptor,
    write_descriptor,
)
from exchange_store.exchange.handles import (
    ExchangeContext,
    ExchangeSinkHandle,
    ExchangeSinkInstanceHandle,
    ExchangeSinkReceipt,
    ExchangeSourceHandle,
)
from exchange_store.exchange.manifest import Manifest, open_receipt, read_manifest
from exchange_store.exchange.merge import plan_source_handles
from exchange_store.exchange.paths import (
    attempt_dir,
    base_directory_for,
    descriptor_path,
    exchange_dir,
    lease_path,
    manifest_context,
    manifest_path,
    parse_exchange_path,
    query_dir,
)
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.lease import Lease
from exchange_store.ids import check_int_id

if TYPE_CHECKING:
    from exchange_store.exchange.config import ExchangeManagerConfig

__all__ = ["AttemptNotCommittedError", "Exchange", "ExchangeStateError", "delete_exchange_data"]
# (the errors live in exchange_store.errors; re-exported here for older imports)

_log = logging.getLogger(__name__)


def delete_exchange_data(
    client: FileSystemClient, config: ExchangeManagerConfig, context: ExchangeContext
) -> list[ExchangeStoreError]:
    """Delete every byte of one exchange from every base directory; the failures, not raised.

    Aborts incomplete multipart uploads under it first (S3), and removes the query's directory
    once its last exchange is gone.
    """
    errors: list[ExchangeStoreError] = []
    for base in config.base_directories:
        directory = exchange_dir(base, context.query_id, context.exchange_id)
        try:
            if client.supports_multipart_cleanup:
                client.abort_multipart_uploads(directory)
            client.delete_recursive(directory)
            client.prune_empty_dirs(query_dir(base, context.query_id), base)
        except ExchangeStoreError as exc:
            errors.append(exc)
    return errors


def _stop_lease(lease: Lease) -> None:
    try:
        lease.close()
    except Exception as exc:  # a finalizer must not raise
        _log.debug("closing an abandoned lease failed: %s", exc)


class Exchange:
    """One exchange of one query, on the coordinator. Thread-safe.

    Built by ``ExchangeManager.create_exchange``; see the module docstring for the rules.
    """

    def __init__(
        self,
        client: FileSystemClient,
        config: ExchangeManagerConfig,
        context: ExchangeContext,
        output_partition_count: int,
        preserve_order: bool,
        key: bytes | None,
        *,
        on_close: Callable[[Exchange], None] | None = None,
        reopen: bool = False,
        shape_known: bool = False,
    ) -> None:
        self._client = client
        self._config = config
        self._context = context
        self._output_partition_count = output_partition_count
        self._preserve_order = bool(preserve_order)
        self._key = key
        self._on_close = on_close
        self._token = secrets.token_hex(8)
        self._lock = threading.RLock()
        self._sinks: dict[int, ExchangeSinkHandle] = {}
        self._no_more_sinks = False
        self._instantiated: dict[int, set[int]] = {}
        self._selected: dict[int, int] = {}
        self._manifests: dict[int, Manifest] = {}
        self._refused: dict[int, list[int]] = {}
        self._all_finished = False
        self._handles: list[ExchangeSourceHandle] | None = None
        self._generation = 0
        self._attempts_used: dict[int, int] = {}
        self._closed = False
        self._directories = tuple(
            exchange_dir(b, context.query_id, context.exchange_id) for b in config.base_directories
        )
        self._lease = Lease(
            client,
            [lease_path(b, context.query_id, context.exchange_id) for b in config.base_directories],
            owner=f"exchange {context.query_id}/{context.exchange_id}",
            ttl=config.lease_ttl,
        )
        self._descriptor_path = descriptor_path(
            config.base_directories[0], context.query_id, context.exchange_id
        )
        if reopen:
            recorded = self._read_descriptor(shape_known)
        else:
            self._create_exclusive()
        self._lease.start()  # a reopened exchange takes the lease over
        self._finalizer = weakref.finalize(self, _stop_lease, self._lease)
        self._finalizer.atexit = False
        try:
            if reopen:
                self._recover(recorded)
            else:
                self._write_descriptor()
        except BaseException:
            self._finalizer.detach()
            _stop_lease(self._lease)
            raise

    def _create_exclusive(self) -> None:
        """Claim the context on storage: the first lease is created exclusively.

        Raises:
            InvalidArgumentError: the exchange already exists on storage (names it).
        """
        first = self._lease.paths[0]
        try:
            self._client.write_exclusive(first, self._lease.record().encode())
        except CommitConflictError:
            raise InvalidArgumentError(
                f"exchange {self._context} already exists on storage ({first}): another "
                "coordinator has it open, or it crashed and gc has not collected it yet; use "
                "a new exchange id, or open_exchange() to take it over"
            ) from None

    def _descriptor(self) -> ExchangeDescriptor:
        cfg = self._config
        return ExchangeDescriptor(
            output_partition_count=self._output_partition_count,
            preserve_order=self._preserve_order,
            codec=cfg.codec,
            compression_level=cfg.compression_level,
            encrypted=self._key is not None,
            selected=dict(self._selected) if self._all_finished else {},
        )

    def _write_descriptor(self) -> None:
        q, e = self._context.query_id, self._context.exchange_id
        write_descriptor(
            self._client,
            self._descriptor_path,
            self._descriptor(),
            self._key,
            descriptor_context(q, e),
        )

    def _read_descriptor(self, shape_known: bool) -> ExchangeDescriptor:
        """The stored descriptor of the exchange being reopened.

        With ``shape_known`` (the caller gave the partition count and order) a damaged
        descriptor is logged and rebuilt from that shape and the commits on storage.

        Raises:
            InvalidArgumentError: there is no such exchange, or it was written under another
                configuration.
            IntegrityError: the descriptor fails its checks (or the key is not the one it was
                written with).
        """
        q, e = self._context.query_id, self._context.exchange_id
        try:
            recorded = read_descriptor(
                self._client, self._descriptor_path, self._key, descriptor_context(q, e)
            )
        except StorageFileNotFoundError:
            raise InvalidArgumentError(
                f"exchange {self._context} does not exist on storage (no {self._descriptor_path})"
                "; create_exchange() makes a new one"
            ) from None
        except IntegrityError as exc:
            if shape_known:
                _log.warning(
                    "exchange %s: its record is damaged, rebuilt from the commits: %s",
                    self._context,
                    exc,
                )
                return self._descriptor()
            raise IntegrityError(
                f"cannot reopen exchange {self._context}: {exc} (a coordinator can reopen an "
                "encrypted exchange only with the key it was written with: configure "
                "exchange.encryption-key-file, or EXCHANGE_STORE_EXCHANGE_KEY, the same for "
                "every coordinator)"
            ) from None
        cfg = self._config
        if (recorded.codec, recorded.compression_level, recorded.encrypted) != (
            cfg.codec,
            cfg.compression_level,
            self._key is not None,
        ):
            raise InvalidArgumentError(
                f"exchange {self._context} was written with compression {recorded.codec} and "
                f"encryption {'on' if recorded.encrypted else 'off'}; this manager has "
                f"{cfg.codec} and {'on' if self._key is not None else 'off'} ({cfg.source})"
            )
        self._output_partition_count = recorded.output_partition_count
        self._preserve_order = recorded.preserve_order
        return recorded

    def _recover(self, recorded: ExchangeDescriptor) -> None:
        """Find the committed attempts on storage and select one per task partition.

        The attempt recorded as selected comes first, then the lowest committed one (all
        attempts of a task partition write the same data). A commit that fails its checks is
        deleted, so it is never selected again, and the next one is tried.
        """
        q, e = self._context.query_id, self._context.exchange_id
        committed: dict[int, set[int]] = {}
        for base, directory in zip(self._config.base_directories, self._directories, strict=True):
            for info in self._client.walk(directory):
                parsed = parse_exchange_path(base, info.path)
                if parsed is None or (parsed.query_id, parsed.exchange_id) != (q, e):
                    continue
                tp, attempt = parsed.task_partition_id, parsed.attempt_id
                if tp is None or attempt is None:
                    continue
                self._attempts_used[tp] = max(attempt, self._attempts_used.get(tp, -1))
                if parsed.kind == "manifest":
                    committed.setdefault(tp, set()).add(attempt)
        for tp, attempts in sorted(committed.items()):
            first = recorded.selected.get(tp)
            order = sorted(attempts, key=lambda a: (a != first, a))
            for attempt in order:
                try:
                    manifest = self._read_manifest(tp, attempt)
                except IntegrityError as exc:
                    _log.warning(
                        "exchange %s: the commit of task partition %d attempt %d is damaged and "
                        "is removed: %s",
                        self._context,
                        tp,
                        attempt,
                        exc,
                    )
                    self._discard_attempt(tp, attempt)
                    continue
                self._selected[tp] = attempt
                self._manifests[tp] = manifest
                self._sinks[tp] = ExchangeSinkHandle(q, e, tp, self._token)
                break
        if recorded.selected and all(
            self._selected.get(tp) == a for tp, a in recorded.selected.items()
        ):
            # It had finished: every task partition it selected is still there as it was.
            self._no_more_sinks = self._all_finished = True

    def _discard_attempt(self, tp: int, attempt: int) -> None:
        """Remove an attempt's commit (first) and files; a failure is logged, not raised."""
        directory = self._attempt_directory(tp, attempt)
        try:
            with contextlib.suppress(StorageFileNotFoundError):
                self._client.delete(manifest_path(directory))
            self._client.delete_recursive(directory)
        except ExchangeStoreError as exc:
            _log.warning("exchange %s: could not remove %s: %s", self._context, directory, exc)

    # ------------------------------------------------------------------ properties

    @property
    def context(self) -> ExchangeContext:
        """The exchange's ids."""
        return self._context

    @property
    def output_partition_count(self) -> int:
        """Number of output partitions."""
        return self._output_partition_count

    @property
    def preserve_order(self) -> bool:
        """Whether records keep their write order per partition and task partition."""
        return self._preserve_order

    @property
    def directories(self) -> tuple[str, ...]:
        """The exchange's directory in each base directory."""
        return self._directories

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def selected_attempts(self) -> dict[int, int]:
        """Task partition to its selected attempt, so far."""
        with self._lock:
            return dict(self._selected)

    def attempts_used(self) -> dict[int, int]:
        """Task partition to the highest attempt id found on storage when it was reopened.

        A restarted coordinator numbers new attempts above these (empty for a new exchange).
        """
        with self._lock:
            return dict(self._attempts_used)

    def __repr__(self) -> str:
        return (
            f"Exchange({self._context}, partitions={self._output_partition_count}, "
            f"preserve_order={self._preserve_order}, sinks={len(self._sinks)})"
        )

    # ------------------------------------------------------------------ sinks

    def add_sink(self, task_partition_id: int) -> ExchangeSinkHandle:
        """Declare task partition ``task_partition_id`` (a writer). Idempotent per id.

        Raises:
            InvalidArgumentError: bad id, or a new task partition after ``no_more_sinks()``.
        """
        tp = check_int_id(task_partition_id, "task_partition_id")
        with self._lock:
            self._check_open()
            handle = self._sinks.get(tp)
            if handle is not None:
                return handle
            if self._no_more_sinks:
                raise ExchangeStateError(
                    f"exchange {self._context}: add_sink({tp}) after no_more_sinks()"
                )
            handle = ExchangeSinkHandle(
                self._context.query_id, self._context.exchange_id, tp, self._token
            )
            self._sinks[tp] = handle
            return handle

    def no_more_sinks(self) -> None:
        """Declare that every task partition was added."""
        with self._lock:
            self._no_more_sinks = True

    def instantiate_sink(
        self, sink: ExchangeSinkHandle, attempt_id: int
    ) -> ExchangeSinkInstanceHandle:
        """The handle a worker needs to write attempt ``attempt_id`` of ``sink``.

        May be called again with another attempt id (retries, speculation).

        Raises:
            InvalidArgumentError: the sink is not from this exchange, or a bad attempt id.
        """
        tp = self._check_sink(sink)
        attempt = check_int_id(attempt_id, "attempt_id")
        cfg = self._config
        q, e = self._context.query_id, self._context.exchange_id
        base = base_directory_for(cfg.base_directories, tp)
        with self._lock:
            self._check_open()
            self._instantiated.setdefault(tp, set()).add(attempt)
        return ExchangeSinkInstanceHandle(
            sink=sink,
            attempt_id=attempt,
            output_partition_count=self._output_partition_count,
            preserve_order=self._preserve_order,
            base_directory=base,
            attempt_directory=attempt_dir(base, q, e, tp, attempt),
            codec=cfg.codec,
            compression_level=cfg.compression_level,
            block_size=cfg.block_size,
            sink_max_file_size=cfg.sink_max_file_size,
            max_page_storage_size=cfg.max_page_storage_size,
            key=self._key,
        )

    def sink_finished(
        self,
        sink: ExchangeSinkHandle,
        attempt_id: int,
        receipt: ExchangeSinkReceipt | None = None,
    ) -> None:
        """Report that attempt ``attempt_id`` of ``sink`` finished (committed).

        The first reported attempt of a task partition is selected; later reports are
        ignored. With ``receipt`` (what the attempt's ``finish()`` returned) no storage request
        is made: the sealed manifest it carries is checked with the exchange's key.

        Raises:
            AttemptNotCommittedError: the attempt would be selected but has no manifest.
            IntegrityError: its manifest (or the receipt's) fails its checks.
            InvalidArgumentError: the sink is not from this exchange, a bad attempt id, or a
                receipt of another attempt.
        """
        tp = self._check_sink(sink)
        attempt = check_int_id(attempt_id, "attempt_id")
        if receipt is not None:
            self._check_receipt(receipt, tp, attempt)
        with self._lock:
            self._check_open()
            if tp in self._selected:
                return
            if receipt is not None:
                manifest = self._open_receipt(receipt, tp, attempt)
                self._selected[tp] = attempt
                self._manifests[tp] = manifest
                return
            try:
                manifest = self._read_manifest(tp, attempt)
            except StorageFileNotFoundError:
                self._refused.setdefault(tp, []).append(attempt)
                raise AttemptNotCommittedError(
                    f"exchange {self._context}: task partition {tp} attempt {attempt} was "
                    "reported finished but never committed (no manifest at "
                    f"{self._manifest_path(tp, attempt)})"
                ) from None
            except StorageError as exc:
                _log.warning(
                    "exchange %s: manifest of task partition %d attempt %d unreadable now, "
                    "checked again by get_source_handles: %s",
                    self._context,
                    tp,
                    attempt,
                    exc,
                )
                self._selected[tp] = attempt
                return
            self._selected[tp] = attempt
            self._manifests[tp] = manifest

    def _check_receipt(self, receipt: ExchangeSinkReceipt, tp: int, attempt: int) -> None:
        if not isinstance(receipt, ExchangeSinkReceipt):
            raise InvalidArgumentError(
                f"exchange {self._context}: expected an ExchangeSinkReceipt, got "
                f"{type(receipt).__name__}"
            )
        ids = (receipt.query_id, receipt.exchange_id, receipt.task_partition_id)
        if ids != (self._context.query_id, self._context.exchange_id, tp) or (
            receipt.attempt_id != attempt
        ):
            raise InvalidArgumentError(
                f"exchange {self._context}: the receipt of {receipt.query_id}/"
                f"{receipt.exchange_id} task partition {receipt.task_partition_id} attempt "
                f"{receipt.attempt_id} was given for task partition {tp} attempt {attempt}"
            )

    def _open_receipt(self, receipt: ExchangeSinkReceipt, tp: int, attempt: int) -> Manifest:
        where = f"receipt of {self._manifest_path(tp, attempt)}"
        manifest = open_receipt(receipt, self._key, where)
        self._check_manifest(manifest, tp, attempt)
        return manifest

    def sink_lost(self, sink: ExchangeSinkHandle, attempt_id: int) -> bool:
        """Forget the selected attempt of ``sink``: its committed data was found lost.

        Called when a reader got a :class:`~exchange_store.errors.LostInputError` naming this
        attempt (lineage recovery). The attempt's commit and files are deleted, the task
        partition counts as not finished, and the next ``sink_finished`` selects again; source
        handles must be asked for again after ``all_required_sinks_finished()``.

        Returns:
            True when ``attempt_id`` was the selected attempt (now forgotten); False when
            another attempt is selected (the loss was already handled) or none is.

        Raises:
            InvalidArgumentError: the sink is not from this exchange, or a bad attempt id.
        """
        tp = self._check_sink(sink)
        attempt = check_int_id(attempt_id, "attempt_id")
        with self._lock:
            self._check_open()
            if self._selected.get(tp) != attempt:
                return False
            del self._selected[tp]
            self._manifests.pop(tp, None)
            self._all_finished = False
            self._handles = None
            self._generation += 1
            self._attempts_used[tp] = max(attempt, self._attempts_used.get(tp, -1))
        self._discard_attempt(tp, attempt)
        return True

    def all_required_sinks_finished(self) -> None:
        """Declare that every task partition has finished; handles may now be asked for.

        The selected attempts are recorded on storage (one write), so that ``open_exchange``
        in a restarted coordinator selects exactly them.
        """
        with self._lock:
            self._check_open()
            self._no_more_sinks = True
            if self._all_finished:
                return
            self._all_finished = True
        try:
            self._write_descriptor()
        except ExchangeStoreError as exc:  # reopening then selects from the commits it lists
            _log.warning("exchange %s: could not record its selections: %s", self._context, exc)

    # ------------------------------------------------------------------ sources

    def get_source_handles(self) -> list[ExchangeSourceHandle]:
        """Handles covering the selected attempts' data, by output partition.

        One or more handles per output partition that has data (none for an empty one), cut
        near ``exchange.source-handle-target-data-size``.

        Raises:
            ExchangeStateError: called before ``all_required_sinks_finished()``, or closed.
            AttemptNotCommittedError: a task partition has no committed selected attempt.
            IntegrityError: a selected manifest fails its checks.
        """
        with self._lock:
            self._check_open()
            if not self._all_finished:
                raise ExchangeStateError(
                    f"exchange {self._context}: get_source_handles() before "
                    "all_required_sinks_finished()"
                )
            if self._handles is None:
                self._handles = self._build_handles()
            return list(self._handles)

    def _build_handles(self) -> list[ExchangeSourceHandle]:
        manifests: list[Manifest] = []
        for tp in sorted(self._sinks.keys() | self._selected.keys()):
            attempt = self._selected.get(tp)
            if attempt is None:
                refused = self._refused.get(tp)
                detail = (
                    f"attempts {', '.join(map(str, refused))} were reported but never committed"
                    if refused
                    else "no attempt was reported finished"
                )
                raise AttemptNotCommittedError(
                    f"exchange {self._context}: task partition {tp} has no committed attempt "
                    f"({detail})"
                )
            manifest = self._manifests.get(tp)
            if manifest is None:
                try:
                    manifest = self._read_manifest(tp, attempt)
                except StorageFileNotFoundError:
                    raise AttemptNotCommittedError(
                        f"exchange {self._context}: task partition {tp} attempt {attempt} was "
                        "reported finished but never committed (no manifest at "
                        f"{self._manifest_path(tp, attempt)})"
                    ) from None
                self._manifests[tp] = manifest
            manifests.append(manifest)
        return plan_source_handles(
            self._client,
            manifests,
            self._config,
            self._context,
            self._key,
            self._preserve_order,
            self._generation,
        )

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Delete every byte of the exchange from every base directory. Idempotent.

        Also aborts incomplete multipart uploads under the exchange (S3) and removes the lease.

        Raises:
            StorageError: deleting failed (calling ``close()`` again retries).
        """
        with self._lock:
            first = not self._closed
            self._closed = True
        errors: list[ExchangeStoreError] = []
        if first:
            self._finalizer.detach()
            if self._on_close is not None:
                self._on_close(self)
            try:
                self._lease.close()  # first, so no refresh re-creates a lease after the delete
            except ExchangeStoreError as exc:
                errors.append(exc)
        errors.extend(delete_exchange_data(self._client, self._config, self._context))
        if errors:
            raise errors[0]

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise ExchangeStateError(f"exchange {self._context} is closed")

    def _check_sink(self, sink: ExchangeSinkHandle) -> int:
        if not isinstance(sink, ExchangeSinkHandle):
            raise InvalidArgumentError(
                f"exchange {self._context}: expected an ExchangeSinkHandle, got "
                f"{type(sink).__name__}"
            )
        if (
            sink.query_id != self._context.query_id
            or sink.exchange_id != self._context.exchange_id
            or sink.exchange_token != self._token
        ):
            raise InvalidArgumentError(
                f"exchange {self._context}: sink handle of task partition "
                f"{sink.task_partition_id} belongs to another exchange "
                f"({sink.query_id}/{sink.exchange_id})"
            )
        with self._lock:
            if self._sinks.get(sink.task_partition_id) != sink:
                raise InvalidArgumentError(
                    f"exchange {self._context}: task partition {sink.task_partition_id} "
                    "was not added with add_sink()"
                )
        return sink.task_partition_id

    def _attempt_directory(self, tp: int, attempt: int) -> str:
        base = base_directory_for(self._config.base_directories, tp)
        return attempt_dir(base, self._context.query_id, self._context.exchange_id, tp, attempt)

    def _manifest_path(self, tp: int, attempt: int) -> str:
        return manifest_path(self._attempt_directory(tp, attempt))

    def _read_manifest(self, tp: int, attempt: int) -> Manifest:
        q, e = self._context.query_id, self._context.exchange_id
        manifest, _ = read_manifest(
            self._client,
            self._manifest_path(tp, attempt),
            self._key,
            manifest_context(q, e, tp, attempt),
        )
        self._check_manifest(manifest, tp, attempt)
        return manifest

    def _check_manifest(self, manifest: Manifest, tp: int, attempt: int) -> None:
        if manifest.output_partition_count != self._output_partition_count:
            raise InvalidArgumentError(
                f"exchange {self._context}: task partition {tp} attempt {attempt} wrote "
                f"{manifest.output_partition_count} partitions, the exchange has "
                f"{self._output_partition_count}"
            )
