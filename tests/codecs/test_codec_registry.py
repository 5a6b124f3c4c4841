from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from exchange_store.codecs import (
    Codec,
    Lz4Codec,
    NoneCodec,
    ZstdCodec,
    codec_for_id,
    get_codec,
    get_codec_class,
    known_codecs,
)
from exchange_store.codecs import registry as reg
from exchange_store.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    InvalidArgumentError,
)


@dataclass(frozen=True, slots=True)
class ReverseCodec(Codec):
    name: ClassVar[str] = "REVERSE"
    codec_id: ClassVar[int] = 200

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(data)[::-1]

    def decompress(self, data: bytes | bytearray | memoryview, raw_size: int) -> bytes:
        if len(data) != raw_size:
            raise ValueError("size")
        return bytes(data)[::-1]


@pytest.fixture
def clean_registry() -> object:
    saved = dict(reg._registry)
    yield
    reg._registry.clear()
    reg._registry.update(saved)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("NONE", NoneCodec),
        ("LZ4", Lz4Codec),
        ("ZSTD", ZstdCodec),
        ("zstd", ZstdCodec),
        (" lz4 ", Lz4Codec),
    ],
)
def test_builtin_names(name: str, cls: type[Codec]) -> None:
    assert get_codec_class(name) is cls
    assert isinstance(get_codec(name), cls)


def test_get_codec_with_params() -> None:
    assert get_codec("ZSTD", level=7) == ZstdCodec(level=7)


def test_unknown_name_lists_allowed_values() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown compression codec 'SNAPPY'; allowed: .*LZ4.*NONE.*ZSTD"
    ):
        get_codec("SNAPPY")


def test_bad_params_name_allowed_params() -> None:
    with pytest.raises(InvalidArgumentError, match=r"codec ZSTD.*allowed parameters: level"):
        get_codec("ZSTD", compression=3)
    with pytest.raises(InvalidArgumentError, match=r"ZSTD level"):
        get_codec("ZSTD", level=99)


def test_view_is_read_only() -> None:
    assert set(known_codecs) >= {"NONE", "LZ4", "ZSTD"}
    with pytest.raises(TypeError):
        known_codecs["X"] = "a:b"  # type: ignore[index]


@pytest.mark.usefixtures("clean_registry")
def test_register_and_clobber() -> None:
    reg.register_codec("reverse", ReverseCodec)
    assert get_codec("REVERSE") == ReverseCodec()
    assert codec_for_id(200) is ReverseCodec
    reg.register_codec("REVERSE", ReverseCodec)  # same target again is fine
    with pytest.raises(InvalidArgumentError, match="already registered"):
        reg.register_codec("REVERSE", "some.module:Other")
    reg.register_codec("REVERSE", "some.module:Other", clobber=True)
    with pytest.raises(BackendNotInstalledError, match=r"some\.module"):
        get_codec("REVERSE")
    with pytest.raises(InvalidArgumentError, match="already registered"):
        reg.register_codec("LZ4", ReverseCodec)


@pytest.mark.usefixtures("clean_registry")
def test_lazy_target_is_imported_on_first_use() -> None:
    reg.register_codec("REV2", f"{__name__}:ReverseCodec")
    assert known_codecs["REV2"].cls is None  # not imported yet
    assert get_codec_class("REV2") is ReverseCodec
    assert known_codecs["REV2"].cls is ReverseCodec


@pytest.mark.usefixtures("clean_registry")
@pytest.mark.parametrize("target", ["nocolon", 42, int])
def test_bad_targets_are_refused(target: object) -> None:
    with pytest.raises(InvalidArgumentError, match="X"):
        reg.register_codec("X", target)  # type: ignore[arg-type]


@pytest.mark.usefixtures("clean_registry")
def test_target_that_is_not_a_codec() -> None:
    reg.register_codec("BAD", "exchange_store.errors:IntegrityError")
    with pytest.raises(ConfigurationError, match="not a Codec class"):
        get_codec("BAD")


def test_codec_for_id() -> None:
    assert codec_for_id(0) is NoneCodec
    assert codec_for_id(1) is Lz4Codec
    assert codec_for_id(2) is ZstdCodec
    assert codec_for_id(250) is None
