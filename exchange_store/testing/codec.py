"""A conformance suite every codec passes (built-in and third-party).

Subclass it in a test module and supply the ``codec`` fixture::

    class TestMyCodec(CodecTests):
        @pytest.fixture
        def codec(self) -> Codec:
            return MyCodec(level=4)
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random

import pytest

from exchange_store.codecs.base import Codec
from exchange_store.codecs.registry import get_codec

__all__ = ["CodecTests", "sample_payloads"]


def sample_payloads() -> list[bytes]:
    """Empty, tiny, random (incompressible), repetitive and text-like payloads."""
    rnd = random.Random(7)
    rows = b"".join(
        b"%d|%d|%d|%.2f|%s|1996-03-13|DELIVER IN PERSON|TRUCK|%s\n"
        % (
            i,
            rnd.randrange(200000),
            rnd.randrange(50),
            rnd.random() * 100000,
            rnd.choice([b"N", b"R", b"A"]),
            bytes(rnd.choices(b"abcdefghij klmnop", k=rnd.randrange(10, 40))),
        )
        for i in range(3000)
    )
    return [b"", b"x", bytes(1), os.urandom(1000), b"a" * 100000, rows]


class CodecTests:
    """Round trips and failure behaviour every :class:`Codec` must show."""

    @pytest.fixture
    def codec(self) -> Codec:
        """The codec under test (override)."""
        raise NotImplementedError

    @pytest.mark.parametrize("index", range(len(sample_payloads())))
    def test_round_trip(self, codec: Codec, index: int) -> None:
        """Each sample payload comes back unchanged."""
        data = sample_payloads()[index]
        packed = codec.compress(data)
        assert isinstance(packed, bytes)
        assert codec.decompress(packed, len(data)) == data

    def test_accepts_memoryview_and_bytearray(self, codec: Codec) -> None:
        """Any bytes-like input is accepted."""
        data = sample_payloads()[-1]
        assert codec.decompress(codec.compress(memoryview(data)), len(data)) == data
        packed = codec.compress(bytearray(data))
        assert codec.decompress(bytearray(packed), len(data)) == data
        assert codec.decompress(memoryview(packed), len(data)) == data

    def test_wrong_size_is_refused(self, codec: Codec) -> None:
        """A raw size other than the real one raises ValueError."""
        data = sample_payloads()[-1]
        packed = codec.compress(data)
        with pytest.raises(ValueError):
            codec.decompress(packed, len(data) + 1)
        with pytest.raises(ValueError):
            codec.decompress(packed, len(data) - 1)

    def test_garbage_raises_value_error(self, codec: Codec) -> None:
        """Cut data raises ValueError (or, for NONE, differs)."""
        data = sample_payloads()[-1]
        packed = bytearray(codec.compress(data))
        del packed[len(packed) // 2 :]
        try:
            out = codec.decompress(bytes(packed), len(data))
        except ValueError:
            return
        # a codec without structure (NONE) can only check sizes
        assert out != data

    def test_value_object(self, codec: Codec) -> None:
        """Codecs are frozen, hashable, picklable dataclasses with a name and id."""
        assert dataclasses.is_dataclass(codec)
        assert pickle.loads(pickle.dumps(codec)) == codec
        assert hash(codec) == hash(pickle.loads(pickle.dumps(codec)))
        fields = dataclasses.fields(codec)
        if fields:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(codec, fields[0].name, getattr(codec, fields[0].name))
        assert codec.name and codec.name == codec.name.upper()
        assert 0 <= codec.codec_id <= 255

    def test_registry_builds_it(self, codec: Codec) -> None:
        """get_codec(name, **params) rebuilds an equal codec."""
        params = {k: v for k, v in codec.to_dict().items() if k != "name"}
        assert get_codec(codec.name, **params) == codec
