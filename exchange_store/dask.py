"""A durable shuffle for Dask DataFrames: map output is committed to the exchange.

Dask's own shuffles keep map output in worker memory (``tasks``) or stream it between workers
(``p2p``): a worker lost mid-shuffle takes map output with it, and Dask recomputes it (or
restarts the shuffle). :class:`DurableShuffle` writes each map task's output through an
exchange sink instead, so once a map task committed, its output outlives any worker:

* **map** (one task per input partition): rows are hashed on ``on`` to output partitions and
  each output partition's rows are written as one Arrow IPC stream record (the schema once per
  map task and partition); the task returns the sink's receipt. A re-run of the task (Dask
  recomputes the key of a lost worker, with the same arguments, so the same instance handle)
  finds its commit with ``committed_receipt`` and returns it without doing the work again.
* **plan** (one task): checks every map task's receipt with the query's key and cuts the source
  handles of each output partition (the coordinator's ``get_source_handles``, in the graph);
* **reduce** (one task per output partition): reads its partition's pieces and returns a pandas
  DataFrame with the input's dtypes, index and column order.

A lost worker costs the tasks it was running: a committed map task is never redone (its re-run
is one GET), a map task that had not committed runs again, a reduce task reads again.
Closing the shuffle (``with DurableShuffle(...)``) deletes its exchanges. Works on any base
directory of the manager that the workers reach (local paths with a LocalCluster; S3, HDFS,
...), and with any ``distributed.Client``. Needs ``pip install 'exchange-store[dask]'``.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from exchange_store.errors import BackendNotInstalledError, InvalidArgumentError
from exchange_store.exchange import (
    ExchangeContext,
    ExchangeManager,
    ExchangeSinkInstanceHandle,
    ExchangeSinkReceipt,
    ExchangeSourceHandle,
)
from exchange_store.exchange.merge import handles_from_receipts
from exchange_store.scheduler.model import StorageSpec
from exchange_store.scheduler.worker import open_exchange_manager

__all__ = ["DurableShuffle"]

_PIECE_ROWS = 1 << 20  # rows per IPC stream record at most (records stay below the page limit)


def _import_dask() -> Any:
    try:
        import dask
        import dask.dataframe
    except ImportError as exc:
        raise BackendNotInstalledError(
            "exchange_store.dask needs dask: pip install 'exchange-store[dask]'"
        ) from exc
    return dask


def _storage_spec(manager: ExchangeManager) -> StorageSpec:
    origin = manager.origin
    if origin is None:
        raise InvalidArgumentError(
            "DurableShuffle needs a manager built with ExchangeManager.from_etc() or "
            "from_properties(), so that Dask workers can build the same one"
        )
    if "etc_dir" in origin:
        return StorageSpec(etc_dir=origin["etc_dir"])
    return StorageSpec(
        exchange_properties=origin["properties"], exchange_filesystems=origin["filesystems"]
    )


def _partition_ids(frame: Any, on: Sequence[str], npartitions: int) -> Any:
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame[list(on)], index=False).to_numpy()
    # Small unsigned ids: numpy's stable argsort is then a radix sort (measured 9x faster on
    # 2M rows than on int64).
    dtype = np.uint16 if npartitions <= 1 << 16 else np.uint32 if npartitions <= 1 << 32 else None
    ids = hashed % np.uint64(npartitions)
    return ids.astype(dtype) if dtype is not None else ids


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _map_task(
    frame: Any,
    storage: StorageSpec,
    instance: ExchangeSinkInstanceHandle,
    on: Sequence[str],
    npartitions: int,
) -> ExchangeSinkReceipt:
    """Hash one input partition's rows to output partitions and commit them."""
    manager = open_exchange_manager(storage)
    assert manager is not None
    receipt = manager.committed_receipt(instance)
    if receipt is not None:  # a re-run of a committed map task: nothing to redo
        return receipt
    sink = manager.create_sink(instance)
    try:
        if len(frame):
            ids = _partition_ids(frame, on, npartitions)
            order = ids.argsort(kind="stable")
            # One conversion to Arrow per map task; each partition is a zero-copy slice.
            table = pa.Table.from_pandas(frame.iloc[order], preserve_index=True)
            bounds = ids[order].searchsorted(range(npartitions + 1))
            for p in range(npartitions):
                lo, hi = int(bounds[p]), int(bounds[p + 1])
                for start in range(lo, hi, _PIECE_ROWS):
                    sink.add(
                        p, _ipc_bytes(table.slice(start, min(hi, start + _PIECE_ROWS) - start))
                    )
        return sink.finish()
    except BaseException:
        sink.abort()
        raise


def _plan_task(
    storage: StorageSpec,
    context: ExchangeContext,
    key: bytes | None,
    npartitions: int,
    *receipts: ExchangeSinkReceipt,
) -> dict[int, list[ExchangeSourceHandle]]:
    """Check every map task's receipt once; the source handles of each output partition."""
    manager = open_exchange_manager(storage)
    assert manager is not None
    plan: dict[int, list[ExchangeSourceHandle]] = {}
    for h in handles_from_receipts(
        manager.client, receipts, manager.config, context, key, npartitions
    ):
        plan.setdefault(h.partition_id, []).append(h)
    return plan


def _reduce_task(
    storage: StorageSpec,
    plan: dict[int, list[ExchangeSourceHandle]],
    partition: int,
    meta: Any,
) -> Any:
    """Read one output partition from the committed map outputs into pandas."""
    manager = open_exchange_manager(storage)
    assert manager is not None
    handles = plan.get(partition, [])
    if not handles:
        return meta.iloc[:0]
    source = manager.create_source(handles)
    source.no_more_source_handles()
    try:
        tables = [ipc.open_stream(record).read_all() for record in source]
    finally:
        source.close()
    return _to_pandas(pa.concat_tables(tables, promote_options="permissive"), meta)


def _to_pandas(table: pa.Table, meta: Any) -> Any:
    """One output partition as Dask's own p2p shuffle returns it: meta's columns and dtypes.

    Converted as p2p converts (Dask's dispatch, Arrow buffers released as they go), one
    block per column (no consolidating copy); only the columns whose dtype differs from
    meta's are cast, instead of copying the whole frame (measured: 3x faster than
    ``to_pandas()`` with a full ``astype``).
    """
    import pandas as pd
    from dask.dataframe.dispatch import from_pyarrow_table_dispatch

    frame = from_pyarrow_table_dispatch(meta, table, self_destruct=True, split_blocks=True)
    columns = list(meta.columns)
    if not len(frame):
        return meta.iloc[:0]
    if list(frame.columns) != columns:
        frame = frame[columns]
    if not meta.columns.is_unique:
        return frame.astype(meta.dtypes.to_dict())
    casts = {}
    for column, dtype in meta.dtypes.items():
        actual = frame[column].dtype
        if actual == dtype:
            continue
        if isinstance(actual, pd.CategoricalDtype) and isinstance(dtype, pd.CategoricalDtype):
            continue  # meta may not know the categories; the data's own are right
        casts[column] = dtype
    return frame.astype(casts) if casts else frame


class DurableShuffle:
    """Shuffles Dask DataFrames through the exchange; see the module docstring.

    Args:
        manager: The exchange manager (built with ``from_etc`` or ``from_properties``; its
            base directories must be reachable from every worker).
        query_id: Names the shuffle's exchanges (``{query_id}/shuffle-{n}``).

    Raises:
        BackendNotInstalledError: dask is not installed.
        InvalidArgumentError: a manager the workers cannot rebuild.
    """

    def __init__(self, manager: ExchangeManager, query_id: str) -> None:
        _import_dask()
        self._manager = manager
        self._storage = _storage_spec(manager)
        self._query_id = query_id
        self._lock = threading.Lock()
        self._exchanges: list[Any] = []
        ExchangeContext(query_id, "shuffle-0")  # checks the id now

    def shuffle(self, ddf: Any, on: str | Sequence[str], npartitions: int | None = None) -> Any:
        """A lazy DataFrame whose rows with equal ``on`` values share an output partition.

        Args:
            ddf: The input ``dask.dataframe.DataFrame``.
            on: The column (or columns) to hash.
            npartitions: Output partitions (default: the input's count).

        Returns:
            A lazy ``dask.dataframe.DataFrame`` with ``npartitions`` partitions; any
            ``distributed.Client`` (or the local scheduler) computes it.
        """
        dask = _import_dask()
        import dask.dataframe as dd

        columns = [on] if isinstance(on, str) else list(on)
        missing = [c for c in columns if c not in ddf.columns]
        if missing:
            raise InvalidArgumentError(
                f"shuffle on {missing}: no such column in {list(ddf.columns)}"
            )
        n = ddf.npartitions if npartitions is None else npartitions
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"invalid npartitions {npartitions!r}: a positive integer")
        with self._lock:
            context = ExchangeContext(self._query_id, f"shuffle-{len(self._exchanges)}")
            exchange = self._manager.create_exchange(context, n)
            self._exchanges.append(exchange)
        sinks = [exchange.add_sink(i) for i in range(ddf.npartitions)]
        exchange.no_more_sinks()
        instances = [exchange.instantiate_sink(s, 0) for s in sinks]
        key = instances[0].key if instances else None
        # Unique per exchange object: Dask caches graphs by key name, and a closed shuffle of
        # the same query id must never stand in for this one.
        token = sinks[0].exchange_token if sinks else secrets.token_hex(8)
        name = f"xs-{self._query_id}-{context.exchange_id}-{token}"
        maps = [
            dask.delayed(_map_task, pure=True)(
                part, self._storage, instances[i], columns, n, dask_key_name=f"{name}-map-{i}"
            )
            for i, part in enumerate(ddf.to_delayed())
        ]
        meta = ddf._meta
        plan = dask.delayed(_plan_task, pure=True)(
            self._storage, context, key, n, *maps, dask_key_name=f"{name}-plan"
        )
        reduces = [
            dask.delayed(_reduce_task, pure=True)(
                self._storage, plan, p, meta, dask_key_name=f"{name}-reduce-{p}"
            )
            for p in range(n)
        ]
        return dd.from_delayed(reduces, meta=meta, verify_meta=False)

    def close(self) -> None:
        """Delete every exchange of this shuffle. Idempotent."""
        with self._lock:
            exchanges, self._exchanges = self._exchanges, []
        errors = []
        for exchange in exchanges:
            try:
                exchange.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> DurableShuffle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
