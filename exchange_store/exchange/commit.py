"""The commit of one run of a sink, and the fence that keeps a closed exchange closed.

Commit (:func:`commit_run`): the run's manifest is published with an exclusive create at
``{attempt}/_manifest``; the first run to get there commits the attempt. A run that finds the
manifest already there, or whose write failed ambiguously (a lost response), reads it back: the
run named there decides. Nothing is deleted on an unknown outcome.

Fence (:class:`RunFence`): the exchange is open exactly while its ``_lease`` exists under the
run's base directory. A run checks it before its first file, right before its commit and
right after it; without a lease it removes what it wrote and raises
:class:`~exchange_store.errors.ExchangeClosedError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from exchange_store.errors import (
    CommitConflictError,
    CommitStateUnknownError,
    ExchangeClosedError,
    StorageError,
    StorageFileNotFoundError,
)
from exchange_store.exchange.handles import ExchangeSinkInstanceHandle
from exchange_store.exchange.manifest import Manifest, ManifestFile, read_manifest, write_manifest
from exchange_store.exchange.paths import lease_path, manifest_context, manifest_path, query_dir
from exchange_store.filesystems.base import FileSystemClient

__all__ = ["RunFence", "commit_run"]

_log = logging.getLogger(__name__)


class RunFence:
    """Tells a run whether its exchange is still open; see the module docstring.

    Args:
        client: The sink's client.
        instance: The run's instance handle.
        name: The run, for messages.
    """

    def __init__(self, client: FileSystemClient, instance: ExchangeSinkInstanceHandle, name: str):
        self._client = client
        self._instance = instance
        self._name = name
        self._lease = lease_path(instance.base_directory, instance.query_id, instance.exchange_id)

    def is_open(self) -> bool:
        """Whether the exchange's lease exists (one request).

        Raises:
            StorageError: storage could not tell.
        """
        return self._client.exists(self._lease)

    def is_open_or_unknown(self) -> bool:
        """As :meth:`is_open`, but True when storage cannot tell (the caller's error stands)."""
        try:
            return self.is_open()
        except Exception:
            return True

    def check(self) -> None:
        """Raise :class:`ExchangeClosedError` when the exchange is closed."""
        if not self.is_open():
            raise self.closed_error()

    def closed_error(self) -> ExchangeClosedError:
        """The error a run of a closed exchange raises."""
        inst = self._instance
        return ExchangeClosedError(
            f"sink {self._name}: the exchange {inst.query_id}/{inst.exchange_id} was closed "
            f"(no lease under {inst.base_directory}); this run's files were removed"
        )

    def prune(self) -> None:
        """Remove directories of the closed exchange that this run's writes may have recreated.

        Only empty directories go (``rmdir``), so nothing anyone else wrote is touched.
        """
        inst = self._instance
        query = query_dir(inst.base_directory, inst.query_id)
        try:
            self._client.prune_empty_dirs(inst.attempt_directory, query)
            self._client.prune_empty_dirs(query, inst.base_directory)
        except Exception as exc:
            _log.debug("pruning the closed exchange's directories after %s: %s", self._name, exc)


def commit_run(
    client: FileSystemClient,
    instance: ExchangeSinkInstanceHandle,
    run_id: str,
    files: Sequence[ManifestFile],
    fence: RunFence,
    *,
    discard: Callable[[], None],
    name: str,
) -> tuple[Manifest, bytes]:
    """Publish this run's manifest, or adopt the commit of another run of the instance.

    Args:
        client: The sink's client.
        instance: The run's instance handle.
        run_id: The run.
        files: The run's closed data files.
        fence: The run's fence.
        discard: Deletes this run's files (called when another run committed).
        name: The run, for messages.

    Returns:
        The committed manifest and its sealed bytes; when it names another run, ``discard``
        was called.

    Raises:
        ExchangeClosedError: the exchange was closed before or during the commit.
        StorageError: the commit failed and no manifest is there.
        CommitStateUnknownError: the commit failed and the manifest could not be read back.
        IntegrityError: the manifest another run committed fails its checks.
    """
    inst = instance
    path = manifest_path(inst.attempt_directory)
    fence.check()
    manifest = Manifest(
        query_id=inst.query_id,
        exchange_id=inst.exchange_id,
        task_partition_id=inst.task_partition_id,
        attempt_id=inst.attempt_id,
        run_id=run_id,
        output_partition_count=inst.output_partition_count,
        codec=inst.codec,
        files=tuple(files),
    )
    context = manifest_context(
        inst.query_id, inst.exchange_id, inst.task_partition_id, inst.attempt_id
    )
    try:
        sealed = write_manifest(client, path, manifest, inst.key, context)
    except CommitConflictError:
        committed, sealed = read_manifest(client, path, inst.key, context)
    except StorageError as exc:
        # The write may have landed (a lost response): the manifest itself says.
        try:
            committed, sealed = read_manifest(client, path, inst.key, context)
        except StorageFileNotFoundError:
            raise exc from None
        except Exception as read_exc:
            raise CommitStateUnknownError(
                f"sink {name}: the commit of {path} failed ({exc}) and reading it back failed "
                f"too ({read_exc}), so the attempt may be committed"
            ) from exc
    else:
        committed = manifest
    if committed.run_id != run_id:
        _log.info("sink %s: run %s committed the attempt first", name, committed.run_id)
        discard()
        return committed, sealed
    if not fence.is_open_or_unknown():
        # Closed under the commit: nobody will read it; leave nothing behind. (When the lease
        # cannot be read the commit stands: it is a fact, and close() or gc collect it.)
        client.delete(path)
        raise fence.closed_error()
    return committed, sealed
