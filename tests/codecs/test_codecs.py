from __future__ import annotations

import pytest

from exchange_store.codecs import Codec, Lz4Codec, NoneCodec, ZstdCodec, get_codec
from exchange_store.errors import InvalidArgumentError
from exchange_store.testing.codec import CodecTests


class TestNoneCodec(CodecTests):
    @pytest.fixture
    def codec(self) -> Codec:
        return NoneCodec()


class TestLz4Codec(CodecTests):
    @pytest.fixture(params=[1, 8])
    def codec(self, request: pytest.FixtureRequest) -> Codec:
        return Lz4Codec(acceleration=request.param)


class TestZstdCodec(CodecTests):
    @pytest.fixture(params=[-3, 1, 3, 19])
    def codec(self, request: pytest.FixtureRequest) -> Codec:
        return ZstdCodec(level=request.param)


@pytest.mark.parametrize("level", [0, 23, -8, True, "3", 3.0, None])
def test_zstd_level_is_validated(level: object) -> None:
    with pytest.raises(InvalidArgumentError, match="ZSTD level"):
        ZstdCodec(level=level)  # type: ignore[arg-type]


@pytest.mark.parametrize("acceleration", [0, -1, 65538, True, "1"])
def test_lz4_acceleration_is_validated(acceleration: object) -> None:
    with pytest.raises(InvalidArgumentError, match="LZ4 acceleration"):
        Lz4Codec(acceleration=acceleration)  # type: ignore[arg-type]


def test_defaults_and_repr() -> None:
    assert ZstdCodec() == ZstdCodec(level=3)
    assert repr(ZstdCodec(level=5)) == "ZstdCodec(level=5)"
    assert ZstdCodec(level=5).to_dict() == {"name": "ZSTD", "level": 5}
    assert NoneCodec().to_dict() == {"name": "NONE"}
    assert {c.codec_id for c in (NoneCodec(), Lz4Codec(), ZstdCodec())} == {0, 1, 2}


def test_zstd_frame_declaring_another_size_is_refused() -> None:
    packed = ZstdCodec().compress(b"abc" * 1000)
    with pytest.raises(ValueError, match="declares 3000 bytes"):
        ZstdCodec().decompress(packed, 10)
    with pytest.raises(ValueError, match="malformed"):
        ZstdCodec().decompress(b"not a frame", 10)


def test_lz4_empty_input() -> None:
    codec = Lz4Codec()
    assert codec.decompress(codec.compress(b""), 0) == b""
    with pytest.raises(ValueError):
        codec.decompress(b"\x01\x02", 0)


def test_registry_instances_compress_alike() -> None:
    data = b"lineitem|" * 5000
    for name in ("NONE", "LZ4", "ZSTD"):
        codec = get_codec(name)
        assert codec.decompress(codec.compress(data), len(data)) == data
