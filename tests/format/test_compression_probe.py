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


def _half_random(n: int, seed: int) -> bytes:
    """Data LZ4 shrinks by about a tenth: 90% random bytes, 10% zeros."""
    import random

    rng = random.Random(seed)
    return b"".join(rng.randbytes(900) + bytes(100) for _ in range(n // 1000))


def test_min_saving_stores_blocks_raw_that_shrink_too_little() -> None:
    from exchange_store.codecs.lz4 import Lz4Codec
    from exchange_store.format.block import FileKeys, encode_block
    from exchange_store.format.structs import BLOCK_COMPRESSED, BLOCK_HEADER

    keys = FileKeys(bytes(16), None, b"ctx")
    section = _half_random(64_000, 1)
    packed = len(Lz4Codec().compress(section))
    assert 0.8 * len(section) < packed < 0.97 * len(section)  # saves less than 20%

    def flags(min_saving: float) -> int:
        parts = encode_block(
            keys, Lz4Codec(), section, 0, 0, 1, CompressionProbe(min_saving=min_saving)
        )
        return BLOCK_HEADER.unpack(parts[0])[3]

    assert flags(0.0) & BLOCK_COMPRESSED  # it shrank: kept compressed
    assert not flags(0.2) & BLOCK_COMPRESSED  # not by a fifth: stored raw
    # A probe that keeps seeing too little saving stops calling the codec.
    probe = CompressionProbe(streak=2, skip=4, min_saving=0.2)
    for _ in range(2):
        assert probe.should_try()
        probe.record(len(section), packed)
    assert not probe.should_try()


def test_min_saving_setting_reaches_the_sink(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import exchange_store as xs
    from exchange_store.errors import ConfigurationError

    def stored(min_saving: str) -> int:
        root = tmp_path / min_saving
        manager = xs.ExchangeManager.from_properties(
            {
                "exchange.base-directories": str(root),
                "exchange.compression-min-saving": min_saving,
                "exchange.encryption-enabled": "false",
            }
        )
        exchange = manager.create_exchange(xs.ExchangeContext("q", "e"), 1)
        handle = exchange.add_sink(0)
        exchange.no_more_sinks()
        records = [_half_random(50_000, i) for i in range(8)]
        with manager.create_sink(exchange.instantiate_sink(handle, 0)) as sink:
            for record in records:
                sink.add(0, record)
        receipt = sink.finish()
        exchange.sink_finished(handle, 0, receipt)
        exchange.all_required_sinks_finished()
        source = manager.create_source(exchange.get_source_handles())
        source.no_more_source_handles()
        assert list(source) == records
        size = sum(f.stat().st_size for f in root.rglob("*.xsf"))
        exchange.close()
        return size

    raw = sum(len(_half_random(50_000, i)) for i in range(8))
    assert stored("0") < 0.97 * raw
    assert stored("0.2") > raw
    try:
        xs.ExchangeManager.from_properties(
            {"exchange.base-directories": str(tmp_path), "exchange.compression-min-saving": "1"}
        )
    except ConfigurationError as exc:
        assert "exchange.compression-min-saving" in str(exc)
    else:
        raise AssertionError("min-saving 1 accepted")
