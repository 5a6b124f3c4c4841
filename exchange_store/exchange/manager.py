"""The entry point: ``ExchangeManager`` makes exchanges (coordinator), sinks and sources (workers).

A manager is built from configuration (``from_etc`` or ``from_properties``); a worker process
builds its own from the same configuration and works from the picklable handles it is given.
Per-query AES keys are generated here, kept in memory only and passed in handles.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from exchange_store.config import load_etc
from exchange_store.crypto.keyfile import (
    derive_query_key,
    ensure_key_file,
    key_from_env,
    load_key_file,
)
from exchange_store.errors import (
    ConfigurationError,
    ExchangeStateError,
    InvalidArgumentError,
    StorageFileNotFoundError,
)
from exchange_store.exchange.config import (
    ENCRYPTION_KEY_FILE,
    FILESYSTEM_TYPE,
    KEY_ENV_VAR,
    ExchangeManagerConfig,
)
from exchange_store.exchange.exchange import Exchange, delete_exchange_data
from exchange_store.exchange.handles import (
    ExchangeContext,
    ExchangeSinkInstanceHandle,
    ExchangeSinkReceipt,
    ExchangeSourceHandle,
    SourceFile,
)
from exchange_store.exchange.manifest import read_manifest
from exchange_store.exchange.paths import manifest_context, manifest_path
from exchange_store.exchange.sink import ExchangeSink
from exchange_store.exchange.source import CORES, ExchangeSource
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.engine_keys import client_from_engine_keys
from exchange_store.filesystems.factory import load_component_client
from exchange_store.ids import check_id

__all__ = ["KEY_SIZE", "ExchangeManager"]

_log = logging.getLogger(__name__)
KEY_SIZE = 32
_OBJECT_STORE_MAX_GAP = 1 << 20


def _master_key(config: ExchangeManagerConfig, environ: Mapping[str, str] | None) -> bytes | None:
    """The master key of the query keys: the environment first, then the key file."""
    if not config.encryption_enabled:
        return None
    from_env = key_from_env(KEY_ENV_VAR, environ)
    if from_env is not None:
        return from_env
    path = config.encryption_key_file
    if path is None:
        return None
    if config.encryption_key_file_default:
        try:
            ensure_key_file(path)
        except ConfigurationError as exc:
            _log.warning(
                "%s: no master key (%s); query keys are random and die with their "
                "coordinator (no resume in another process)",
                config.source,
                exc,
            )
            return None
    return load_key_file(path, ENCRYPTION_KEY_FILE, "exchange master key")


def _load_client(
    config: ExchangeManagerConfig,
    filesystems: Mapping[str, Mapping[str, str]],
    sources: Mapping[str, str],
) -> FileSystemClient:
    """The client of the exchange: a client file, or Trino's storage keys.

    A file named explicitly (``exchange-filesystem-type``) wins; Trino's keys win over the
    default name's file (``etc/filesystem/exchange.properties``) and over scheme defaults.
    """
    named = config.filesystem_name in filesystems
    if named and (config.filesystem_name_explicit or not config.engine_storage):
        if config.engine_storage:
            _log.warning(
                "%s: %s configures the filesystem client; the exchange.s3/gcs/azure/hdfs keys "
                "are not used",
                config.source,
                sources.get(config.filesystem_name, f"filesystem {config.filesystem_name}"),
            )
    elif config.engine_storage or config.manager_name == "hdfs":
        client = client_from_engine_keys(
            config.engine_storage,
            config.base_directories,
            manager_name=config.manager_name,
            source=config.source,
        )
        if client is not None:
            return client
    return load_component_client(
        config.base_directories,
        config.filesystem_name,
        filesystems,
        explicit=config.filesystem_name_explicit,
        key=FILESYSTEM_TYPE,
        source=config.source,
        sources=sources,
    )


class ExchangeManager:
    """Creates exchanges, sinks and sources over one filesystem client. Thread-safe.

    Args:
        config: The validated configuration.
        client: The filesystem client (its roots must include every base directory).
    """

    def __init__(
        self,
        config: ExchangeManagerConfig,
        client: FileSystemClient,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._client = client
        self._master_key = _master_key(config, environ)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._open: dict[str, set[str]] = {}
        self._closed = False
        self._origin: dict[str, Any] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_etc(cls, etc_dir: str | os.PathLike[str] = "etc") -> ExchangeManager:
        """Read ``etc/exchange-manager.properties`` and the filesystem client it names.

        Raises:
            ConfigurationError: a missing or wrong file, key or value (named in the message).
        """
        etc = load_etc(etc_dir)
        pf = etc.exchange_manager
        if pf is None:
            raise ConfigurationError(
                f"{etc.root / 'exchange-manager.properties'}: exchange manager configuration "
                "file not found"
            )
        config = ExchangeManagerConfig.from_properties(pf.values, pf.path, pf.lines, pf.origins)
        filesystems, sources = etc.client_files(
            config.filesystem_name,
            explicit=config.filesystem_name_explicit,
            wanted_by=pf,
            key=FILESYSTEM_TYPE,
        )
        manager = cls(config, _load_client(config, filesystems, sources))
        manager._origin = {"etc_dir": os.path.abspath(os.fspath(etc_dir))}
        return manager

    @classmethod
    def from_properties(
        cls,
        properties: Mapping[str, str],
        *,
        filesystems: Mapping[str, Mapping[str, str]] | None = None,
        source: str = "<properties>",
    ) -> ExchangeManager:
        """Build a manager from ``exchange-manager.properties`` keys.

        Args:
            properties: The exchange manager's keys.
            filesystems: Client properties by NAME (as in ``etc/filesystem/NAME.properties``).
            source: Name used in error messages.

        Raises:
            ConfigurationError: a wrong key or value, or a missing filesystem client.
        """
        config = ExchangeManagerConfig.from_properties(properties, source)
        manager = cls(config, _load_client(config, filesystems or {}, {}))
        manager._origin = {
            "properties": dict(properties),
            "filesystems": {k: dict(v) for k, v in (filesystems or {}).items()},
        }
        return manager

    # ------------------------------------------------------------------ properties

    @property
    def config(self) -> ExchangeManagerConfig:
        """The configuration."""
        return self._config

    @property
    def client(self) -> FileSystemClient:
        """The filesystem client."""
        return self._client

    @property
    def origin(self) -> dict[str, Any] | None:
        """How another process rebuilds this manager, or None (built from objects).

        ``{"etc_dir": path}`` after :meth:`from_etc`; ``{"properties": ..., "filesystems": ...}``
        after :meth:`from_properties`. Secrets in the properties travel with it: send it only to
        the engine's own workers.
        """
        return None if self._origin is None else dict(self._origin)

    @property
    def base_directories(self) -> tuple[str, ...]:
        """The configured base directories."""
        return self._config.base_directories

    # ------------------------------------------------------------------ coordinator

    def create_exchange(
        self, context: ExchangeContext, output_partition_count: int, preserve_order: bool = False
    ) -> Exchange:
        """Create an exchange and start its lease.

        Raises:
            InvalidArgumentError: ``context`` is not an ExchangeContext, or the partition count
                is not a positive integer or exceeds ``exchange.max-output-partition-count``
                ("Max number of output partitions exceeded for exchange ...").
            StorageError: the lease could not be written.
        """
        if not isinstance(context, ExchangeContext):
            raise InvalidArgumentError(f"expected an ExchangeContext, got {type(context).__name__}")
        if self._closed:
            raise ExchangeStateError(
                f"create_exchange({context}) on a closed ExchangeManager ({self._config.source})"
            )
        count = output_partition_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgumentError(
                f"invalid output_partition_count {count!r} for exchange {context}: "
                "must be a positive integer"
            )
        limit = self._config.max_output_partition_count
        if count > limit:
            raise InvalidArgumentError(
                f"Max number of output partitions exceeded for exchange {context}. "
                f"Allowed: {limit}. Requested: {count}."
            )
        return self._exchange(context, count, preserve_order, reopen=False, shape_known=True)

    def open_exchange(
        self,
        context: ExchangeContext,
        *,
        output_partition_count: int | None = None,
        preserve_order: bool = False,
    ) -> Exchange:
        """Reopen an exchange that exists on storage (a coordinator that restarts).

        With ``output_partition_count`` (the shape the caller created it with) an exchange
        whose own record is damaged is still reopened from its commits instead of refused.

        The lease is taken over. Every task partition with a committed attempt counts as
        finished: the attempt recorded as selected when ``all_required_sinks_finished()`` ran,
        else its lowest committed attempt (attempts of a task partition write the same data).
        A commit that fails its checks is deleted and its task partition is not finished. The
        exchange goes on from there: ``add_sink`` returns the handles of known task
        partitions, and new attempts should be numbered above :meth:`Exchange.attempts_used`.

        Raises:
            InvalidArgumentError: no such exchange on storage, it is open in this manager, or
                it was written under another configuration (codec, encryption).
            IntegrityError: its record fails its checks, or this manager does not have the key
                it was written with (random query keys die with their coordinator: configure
                ``exchange.encryption-key-file``).
            StorageError: storage failed.
        """
        if not isinstance(context, ExchangeContext):
            raise InvalidArgumentError(f"expected an ExchangeContext, got {type(context).__name__}")
        if self._closed:
            raise ExchangeStateError(
                f"open_exchange({context}) on a closed ExchangeManager ({self._config.source})"
            )
        return self._exchange(
            context,
            output_partition_count or 1,
            preserve_order,
            reopen=True,
            shape_known=output_partition_count is not None,
        )

    def discard_exchange(self, context: ExchangeContext) -> None:
        """Delete what is on storage of an exchange nobody has open (a dead coordinator's).

        The same deletion as ``Exchange.close()``: every base directory, incomplete uploads,
        and the query's directory once empty. Nothing there is not an error.

        Raises:
            InvalidArgumentError: the exchange is open in this manager.
            StorageError: deleting failed.
        """
        with self._lock:
            if context.exchange_id in self._open.get(context.query_id, ()):
                raise InvalidArgumentError(
                    f"exchange {context} is open in this manager; close() it instead"
                )
        errors = delete_exchange_data(self._client, self._config, context)
        if errors:
            raise errors[0]

    def _exchange(
        self,
        context: ExchangeContext,
        count: int,
        preserve_order: bool,
        *,
        reopen: bool,
        shape_known: bool,
    ) -> Exchange:
        key = self._acquire_key(context)
        try:
            return Exchange(
                self._client,
                self._config,
                context,
                count,
                preserve_order,
                key,
                on_close=self._exchange_closed,
                reopen=reopen,
                shape_known=shape_known,
            )
        except BaseException:
            self._release_key(context)
            raise

    def _acquire_key(self, context: ExchangeContext) -> bytes | None:
        with self._lock:
            open_ = self._open.setdefault(context.query_id, set())
            if context.exchange_id in open_:
                raise InvalidArgumentError(
                    f"exchange {context} is already open in this manager; close it first"
                )
            open_.add(context.exchange_id)
            if not self._config.encryption_enabled:
                return None
            key = self._keys.get(context.query_id)
            if key is None:
                key = self._keys[context.query_id] = self._new_key(context.query_id)
            return key

    def _new_key(self, query_id: str) -> bytes:
        if self._master_key is not None:
            return derive_query_key(self._master_key, query_id)
        return secrets.token_bytes(KEY_SIZE)

    def durable_query_key(self, query_id: str) -> bytes | None:
        """The key of ``query_id`` that every coordinator with this configuration derives.

        For records of a query kept beside its exchanges (the scheduler's journal); never
        write it anywhere. None when exchange data is not encrypted.

        Raises:
            ConfigurationError: encryption is on and no master key is configured.
        """
        check_id(query_id, "query_id")
        if not self._config.encryption_enabled:
            return None
        if self._master_key is None:
            raise ConfigurationError(
                f"{self._config.source}: query keys are random and die with their coordinator;"
                f" set {ENCRYPTION_KEY_FILE} (create it with `exchange-store keygen PATH`) or "
                f"{KEY_ENV_VAR} so a restarted coordinator can resume a query"
            )
        return derive_query_key(self._master_key, query_id)

    @property
    def can_reopen(self) -> bool:
        """Whether another coordinator process can reopen this manager's exchanges.

        True when data is not encrypted or query keys are derived from a master key
        (``exchange.encryption-key-file`` or ``EXCHANGE_STORE_EXCHANGE_KEY``); random query keys
        die with the coordinator that made them.
        """
        return not self._config.encryption_enabled or self._master_key is not None

    def _release_key(self, context: ExchangeContext) -> None:
        with self._lock:
            open_ = self._open.get(context.query_id)
            if open_ is not None:
                open_.discard(context.exchange_id)
                if not open_:
                    del self._open[context.query_id]
                    self._keys.pop(context.query_id, None)

    def _exchange_closed(self, exchange: Exchange) -> None:
        self._release_key(exchange.context)

    # ------------------------------------------------------------------ workers

    def create_sink(self, instance: ExchangeSinkInstanceHandle) -> ExchangeSink:
        """A sink writing the attempt described by ``instance``.

        Raises:
            InvalidArgumentError: not an instance handle, or it was issued under another
                configuration (base directory, codec or encryption differ).
        """
        self._check_instance(instance)
        return ExchangeSink(
            self._client,
            instance,
            max_buffer_size=self._config.sink_max_buffer_size,
            writer_threads=self._config.writer_threads,
            fsync=self._config.sink_fsync_data_files,
            min_saving=self._config.compression_min_saving,
        )

    def _check_instance(self, instance: ExchangeSinkInstanceHandle) -> None:
        if not isinstance(instance, ExchangeSinkInstanceHandle):
            raise InvalidArgumentError(
                f"expected an ExchangeSinkInstanceHandle, got {type(instance).__name__}"
            )
        what = (
            f"sink handle of {instance.query_id}/{instance.exchange_id} task partition "
            f"{instance.task_partition_id} attempt {instance.attempt_id}"
        )
        self._check_compatible(
            what,
            [instance.base_directory],
            instance.codec,
            instance.compression_level,
            instance.encrypted,
        )

    def committed_receipt(self, instance: ExchangeSinkInstanceHandle) -> ExchangeSinkReceipt | None:
        """The receipt of ``instance``'s commit if a run of it already committed, else None.

        One storage read. A re-run of an instance calls it first and skips its work when the
        attempt is already committed (the receipt is what ``finish()`` would have returned).

        Raises:
            InvalidArgumentError: not an instance handle, or from another configuration.
            IntegrityError: the committed manifest fails its checks.
            StorageError: storage failed.
        """
        self._check_instance(instance)
        path = manifest_path(instance.attempt_directory)
        context = manifest_context(
            instance.query_id, instance.exchange_id, instance.task_partition_id, instance.attempt_id
        )
        try:
            manifest, sealed = read_manifest(self._client, path, instance.key, context)
        except StorageFileNotFoundError:
            return None
        return manifest.receipt(sealed)

    def create_source(self, handles: Iterable[ExchangeSourceHandle] = ()) -> ExchangeSource:
        """A source reading ``handles`` (more may be added later).

        Raises:
            InvalidArgumentError: not source handles, or issued under another configuration.
        """
        cfg = self._config
        readers = cfg.source_concurrent_readers
        if self._client.scheme == "file":
            # Page-cache reads are CPU-bound: threads beyond the cores only fight over the GIL
            # (measured on 2 cores: 4 threads read warm data 15-25% slower than 2, cold the same).
            readers = min(readers, CORES)
        return ExchangeSource(
            self._client,
            handles,
            concurrent_readers=readers,
            max_buffered_bytes=max(32 << 20, 4 * cfg.source_concurrent_readers * cfg.block_size),
            # Object stores charge per request: read small gaps through rather than split.
            max_gap=0 if self._client.scheme == "file" else _OBJECT_STORE_MAX_GAP,
            check=self._check_source_handle,
            # Local reads are CPU work: the consumer reads each block itself (no hand-offs).
            inline=self._client.scheme == "file",
        )

    def _check_source_handle(
        self, handle: ExchangeSourceHandle, files: tuple[SourceFile, ...]
    ) -> None:
        what = (
            f"source handle of {handle.query_id}/{handle.exchange_id} partition "
            f"{handle.partition_id}"
        )
        self._check_compatible(
            what,
            sorted({f.path for f in files}),
            handle.codec,
            handle.compression_level,
            handle.encrypted,
        )

    def _check_compatible(
        self,
        what: str,
        paths: Iterable[str],
        codec: str,
        level: int | None,
        encrypted: bool,
    ) -> None:
        cfg = self._config
        problems = []
        for path in paths:
            try:
                self._client.check_path(path)
            except InvalidArgumentError:
                problems.append(
                    f"{path} is outside the base directories {', '.join(cfg.base_directories)}"
                )
                break
        if codec != cfg.codec or level != cfg.compression_level:
            problems.append(
                f"compression {codec}{'' if level is None else f' level {level}'} differs "
                f"from exchange.compression-codec={cfg.codec}"
            )
        if encrypted != cfg.encryption_enabled:
            problems.append(
                f"encryption {'on' if encrypted else 'off'} differs from "
                f"exchange.encryption-enabled={str(cfg.encryption_enabled).lower()}"
            )
        if problems:
            raise InvalidArgumentError(
                f"{what} was issued under another exchange manager configuration "
                f"({cfg.source}): {'; '.join(problems)}"
            )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the filesystem client. Exchanges must be closed by their owner first.

        Idempotent; ``create_exchange`` is refused afterwards.
        """
        self._closed = True
        self._client.close()

    def __enter__(self) -> ExchangeManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self._config
        return (
            f"ExchangeManager(base_directories={list(cfg.base_directories)!r}, "
            f"codec={cfg.codec}, encryption={cfg.encryption_enabled})"
        )
