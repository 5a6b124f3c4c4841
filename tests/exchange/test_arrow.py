from __future__ import annotations

import pyarrow as pa
import pytest

from exchange_store.arrow import read_batches, write_batch
from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.exchange.handles import ExchangeContext


def test_arrow_round_trip(local_backend):
    manager = local_backend.manager({"exchange.max-page-storage-size": "64kB"})
    exchange = manager.create_exchange(ExchangeContext("qa", "e"), 2, preserve_order=True)
    sink_handle = exchange.add_sink(0)
    batches = [
        pa.record_batch({"k": pa.array(range(i, i + 100)), "v": pa.array([f"s{i}"] * 100)})
        for i in range(0, 1000, 100)
    ]
    with manager.create_sink(exchange.instantiate_sink(sink_handle, 0)) as sink:
        for b in batches:
            assert write_batch(sink, 1, b) > 0
        big = pa.record_batch({"k": pa.array(range(100_000))})
        with pytest.raises(InvalidArgumentError, match="max-page-storage-size"):
            write_batch(sink, 0, big)
        with pytest.raises(InvalidArgumentError):
            write_batch(sink, 0, "not a batch")  # type: ignore[arg-type]
    exchange.sink_finished(sink_handle, 0)
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    got = list(read_batches(source))
    assert pa.Table.from_batches(got).equals(pa.Table.from_batches(batches))
    source.close()
    with pytest.raises(IntegrityError):
        list(read_batches([b"not arrow"]))
    exchange.close()
