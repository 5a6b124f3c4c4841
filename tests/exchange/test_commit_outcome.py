"""A manifest write whose outcome is unknown: never half-visible, never silently lost."""

from __future__ import annotations

import pytest

import exchange_store as xs
from exchange_store.testing.faults import (
    Fault,
    FaultPlan,
    faulty_properties,
    register_faulty_filesystem,
)


def _manager(tmp_path, plan: FaultPlan) -> xs.ExchangeManager:
    register_faulty_filesystem()
    return xs.ExchangeManager.from_properties(
        {"exchange.base-directories": str(tmp_path), "exchange-filesystem-type": "exchange"},
        filesystems={"exchange": faulty_properties({"fs.client.type": "local"}, plan)},
    )


def _one_attempt(manager: xs.ExchangeManager, query: str):
    exchange = manager.create_exchange(xs.ExchangeContext(query, "e"), 2)
    handle = exchange.add_sink(0)
    exchange.no_more_sinks()
    return exchange, handle, exchange.instantiate_sink(handle, 0)


def _files(tmp_path) -> list[str]:
    exchange_level = {"_lease", "_exchange"}
    return sorted(
        p.name for p in tmp_path.rglob("*") if p.is_file() and p.name not in exchange_level
    )


def _read(manager: xs.ExchangeManager, exchange: xs.Exchange) -> list[bytes]:
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    try:
        return list(source)
    finally:
        source.close()


def test_lost_manifest_response_is_read_back_as_committed(tmp_path) -> None:
    # The manifest lands, then every try reports failure: finish() reads the manifest back,
    # finds its own run named there, and reports the commit that did happen.
    plan = FaultPlan(
        (Fault("permanent", ops=("write_exclusive",), path="*/_manifest", after=True),)
    )
    manager = _manager(tmp_path, plan)
    exchange, handle, instance = _one_attempt(manager, "q1")
    sink = manager.create_sink(instance)
    sink.add(0, b"row")
    receipt = sink.finish()
    assert receipt.run_id == sink.run_id and receipt.records == 1
    exchange.sink_finished(handle, 0, receipt)
    assert _read(manager, exchange) == [b"row"]
    exchange.close()
    assert _files(tmp_path) == []


def test_failed_manifest_write_leaves_nothing_visible(tmp_path) -> None:
    plan = FaultPlan((Fault("permanent", ops=("write_exclusive",), path="*/_manifest"),))
    manager = _manager(tmp_path, plan)
    exchange, handle, instance = _one_attempt(manager, "q3")
    sink = manager.create_sink(instance)
    sink.add(0, b"row")
    with pytest.raises(xs.StorageError, match="_manifest"):
        sink.finish()
    assert _files(tmp_path) == []
    assert manager.committed_receipt(instance) is None
    with pytest.raises(xs.AttemptNotCommittedError):
        exchange.sink_finished(handle, 0)
    exchange.close()


def test_manifest_that_cannot_be_read_back_is_reported_unknown(tmp_path) -> None:
    plan = FaultPlan(
        (
            Fault("permanent", ops=("write_exclusive",), path="*/_manifest", after=True),
            Fault("permanent", ops=("read",), path="*/_manifest"),
        )
    )
    manager = _manager(tmp_path, plan)
    exchange, handle, instance = _one_attempt(manager, "q2")
    sink = manager.create_sink(instance)
    sink.add(0, b"row")
    with pytest.raises(xs.CommitStateUnknownError, match="may be committed"):
        sink.finish()
    # Nothing was deleted on the basis of an unknown outcome. The manifest is readable to a
    # client without the fault, so the coordinator's reader finds the commit.
    plain = xs.ExchangeManager.from_properties(
        {"exchange.base-directories": str(tmp_path)}, filesystems=None
    )
    receipt = plain.committed_receipt(instance)
    assert receipt is not None and receipt.run_id == sink.run_id
    exchange.sink_finished(handle, 0, receipt)
    assert _read(manager, exchange) == [b"row"]
    exchange.close()
    assert _files(tmp_path) == []
