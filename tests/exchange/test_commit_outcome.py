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
    return sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.name != "_lease")


def test_lost_manifest_response_then_cleanup_leaves_nothing_visible(tmp_path) -> None:
    # The manifest lands, then every try reports failure: finish() raises, and the manifest
    # it may have published is removed before anything else, so the attempt is not readable.
    plan = FaultPlan(
        (Fault("permanent", ops=("write_exclusive",), path="*/_manifest", after=True),)
    )
    manager = _manager(tmp_path, plan)
    exchange, handle, instance = _one_attempt(manager, "q1")
    sink = manager.create_sink(instance)
    sink.add(0, b"row")
    with pytest.raises(xs.StorageError):
        sink.finish()
    assert _files(tmp_path) == []
    with pytest.raises(xs.AttemptNotCommittedError):
        exchange.sink_finished(handle, 0)
    exchange.close()


def test_manifest_that_cannot_be_removed_is_reported_unknown(tmp_path) -> None:
    plan = FaultPlan(
        (
            Fault("permanent", ops=("write_exclusive",), path="*/_manifest", after=True),
            Fault("permanent", ops=("delete",), path="*/_manifest"),
        )
    )
    manager = _manager(tmp_path, plan)
    exchange, handle, instance = _one_attempt(manager, "q2")
    sink = manager.create_sink(instance)
    sink.add(0, b"row")
    with pytest.raises(xs.CommitStateUnknownError, match="may be committed"):
        sink.finish()
    # Nothing was deleted on the basis of an unknown outcome: the committed attempt reads back.
    exchange.sink_finished(handle, 0)
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    assert list(source) == [b"row"]
    source.close()
    exchange.close()
    assert _files(tmp_path) == []
