"""Arrow record batches through an exchange: one batch = one record (Arrow IPC stream bytes).

>>> write_batch(sink, partition_id, batch)        # doctest: +SKIP
>>> for batch in read_batches(source): ...         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from exchange_store.errors import IntegrityError, InvalidArgumentError

if TYPE_CHECKING:
    from exchange_store.exchange.sink import ExchangeSink

__all__ = ["batch_to_bytes", "bytes_to_batches", "read_batches", "write_batch"]


def batch_to_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    """Serialize one record batch as a complete Arrow IPC stream (schema + batch + end)."""
    if not isinstance(batch, pa.RecordBatch):
        raise InvalidArgumentError(f"expected a pyarrow.RecordBatch, got {type(batch).__name__}")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def bytes_to_batches(data: bytes | memoryview) -> list[pa.RecordBatch]:
    """Parse one record written by :func:`write_batch`.

    Raises:
        IntegrityError: the bytes are not an Arrow IPC stream.
    """
    try:
        with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
            return list(reader)
    except (pa.ArrowInvalid, pa.ArrowIOError) as exc:
        raise IntegrityError(f"record is not an Arrow IPC stream: {exc}") from None


def write_batch(sink: ExchangeSink, partition_id: int, record_batch: pa.RecordBatch) -> int:
    """Add ``record_batch`` to output partition ``partition_id`` of ``sink`` as one record.

    Returns:
        The record's size in bytes.

    Raises:
        InvalidArgumentError: not a record batch, or its IPC bytes exceed
            ``exchange.max-page-storage-size`` (split the batch with ``batch.slice``).
    """
    buffer = batch_to_bytes(record_batch)
    limit = sink.instance.max_page_storage_size
    if buffer.size > limit:
        raise InvalidArgumentError(
            f"Arrow batch of {record_batch.num_rows} rows is {buffer.size} bytes as IPC, more "
            f"than exchange.max-page-storage-size ({limit} bytes); write smaller slices"
        )
    sink.add(partition_id, memoryview(buffer))
    return int(buffer.size)


def read_batches(source: Iterable[bytes]) -> Iterator[pa.RecordBatch]:
    """Every record batch of ``source`` (an ExchangeSource), in the order records come.

    Raises:
        IntegrityError: a record is not an Arrow IPC stream.
    """
    for record in source:
        yield from bytes_to_batches(record)
