"""Blocks that do not shrink stop costing the codec's time, and compressible data still shrinks."""

from __future__ import annotations

import os

from exchange_store.format.block import CompressionProbe


def test_probe_skips_after_a_streak_and_tries_again() -> None:
    probe = CompressionProbe(streak=3, skip=5)
    tried = []
    for _ in range(20):
        if probe.should_try():
            tried.append(True)
            probe.record(1000, 1000)  # never shrinks
        else:
            tried.append(False)
    # 3 tries, 5 skipped, 1 try ... the codec runs on well under half the blocks
    assert tried[:9] == [True, True, True, False, False, False, False, False, True]
    assert sum(tried) < 10


def test_a_shrinking_block_resets_the_streak() -> None:
    probe = CompressionProbe(streak=2, skip=5)
    for raw, packed in [(1000, 1000), (1000, 500), (1000, 1000)]:
        assert probe.should_try()
        probe.record(raw, packed)
    assert probe.should_try()


def test_random_data_round_trips_with_fewer_compress_calls(tmp_path) -> None:
    import exchange_store as xs
    from exchange_store.codecs.lz4 import Lz4Codec

    calls = []
    real = Lz4Codec.compress

    def counting(self, data):  # type: ignore[no-untyped-def]
        calls.append(len(data))
        return real(self, data)

    Lz4Codec.compress = counting  # type: ignore[method-assign]
    try:
        manager = xs.ExchangeManager.from_properties(
            {"exchange.base-directories": str(tmp_path), "exchange.block-size": "64kB"}
        )
        exchange = manager.create_exchange(xs.ExchangeContext("q", "e"), 1)
        sink_handle = exchange.add_sink(0)
        exchange.no_more_sinks()
        records = [os.urandom(16 << 10) for _ in range(256)]  # 4 MiB: 64 blocks
        with manager.create_sink(exchange.instantiate_sink(sink_handle, 0)) as sink:
            for record in records:
                sink.add(0, record)
        exchange.sink_finished(sink_handle, 0, sink.finish())
        assert 0 < len(calls) < 32
        exchange.all_required_sinks_finished()
        source = manager.create_source(exchange.get_source_handles())
        source.no_more_source_handles()
        assert list(source) == records
        source.close()
        exchange.close()
    finally:
        Lz4Codec.compress = real  # type: ignore[method-assign]
