"""A codec from another package, found through its entry point, works end to end."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import exchange_store as xs
from exchange_store.codecs import registry as reg
from exchange_store.errors import ConfigurationError

PLUGIN = textwrap.dedent(
    """
    import zlib
    from dataclasses import dataclass
    from typing import ClassVar

    from exchange_store.codecs import Codec

    CALLS = {"compress": 0, "decompress": 0}


    @dataclass(frozen=True, slots=True)
    class ZlibCodec(Codec):
        name: ClassVar[str] = "ZLIB"
        codec_id: ClassVar[int] = 201

        def compress(self, data):
            CALLS["compress"] += 1
            return zlib.compress(bytes(data))

        def decompress(self, data, raw_size):
            CALLS["decompress"] += 1
            out = zlib.decompress(bytes(data))
            if len(out) != raw_size:
                raise ValueError("size")
            return out
    """
)


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[None]:
    """A distribution on sys.path whose entry point names a codec (as pip would install it)."""
    (tmp_path / "xs_zlib_codec.py").write_text(PLUGIN)
    info = tmp_path / "xs_zlib_codec-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xs-zlib-codec\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[exchange_store.codecs]\nzlib = xs_zlib_codec:ZlibCodec\n"
    )
    saved = dict(reg._registry)
    sys.path.insert(0, str(tmp_path))
    reg.CODECS._entry_points_loaded = False  # a new process would read them afresh
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("xs_zlib_codec", None)
        reg._registry.clear()
        reg._registry.update(saved)


@pytest.mark.usefixtures("installed_plugin")
def test_entry_point_codec_round_trips_through_the_exchange(tmp_path: Path) -> None:
    assert "ZLIB" in reg.codec_names()
    manager = xs.ExchangeManager.from_properties(
        {"exchange.base-directories": str(tmp_path / "x"), "exchange.compression-codec": "zlib"}
    )
    exchange = manager.create_exchange(xs.ExchangeContext("plug", "e"), 2)
    sink = exchange.add_sink(0)
    instance = exchange.instantiate_sink(sink, 0)
    assert instance.codec == "ZLIB"
    writer = manager.create_sink(instance)
    records = [bytes([i]) * (i * 37 % 500) for i in range(200)]
    for i, r in enumerate(records):
        writer.add(i % 2, r)
    exchange.sink_finished(sink, 0, writer.finish())
    exchange.all_required_sinks_finished()
    source = manager.create_source(exchange.get_source_handles())
    source.no_more_source_handles()
    assert sorted(source) == sorted(records)
    source.close()
    calls = sys.modules["xs_zlib_codec"].CALLS
    assert calls["compress"] > 0 and calls["decompress"] > 0  # the plugin did the work
    exchange.close()


def test_unknown_codec_in_configuration_names_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"exchange\.compression-codec.*LZ4.*NONE.*ZSTD"):
        xs.ExchangeManager.from_properties(
            {"exchange.base-directories": str(tmp_path), "exchange.compression-codec": "SNAPPY"}
        )
