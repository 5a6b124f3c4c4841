"""Codec names to codec classes, on the package's one plugin registry.

Built-in names map to ``"module:Class"`` strings that are imported on first use. Third parties
add codecs with :func:`register_codec` or through the ``exchange_store.codecs`` entry-point
group; a registered codec is usable everywhere a codec name is (configuration, the format's
codec ids). Names are case-insensitive and stored upper case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from exchange_store.codecs.base import Codec
from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.plugins import PluginEntry, PluginRegistry

__all__ = [
    "CODECS",
    "ENTRY_POINT_GROUP",
    "codec_for_id",
    "codec_names",
    "get_codec",
    "get_codec_class",
    "known_codecs",
    "register_codec",
]

ENTRY_POINT_GROUP = "exchange_store.codecs"

CODECS: PluginRegistry[Codec] = PluginRegistry(
    "compression codec",
    Codec,
    ENTRY_POINT_GROUP,
    {
        "NONE": "exchange_store.codecs.none:NoneCodec",
        "LZ4": "exchange_store.codecs.lz4:Lz4Codec",
        "ZSTD": "exchange_store.codecs.zstd:ZstdCodec",
    },
    normalize=str.upper,
)
_registry = CODECS._entries  # tests save and restore it

known_codecs: Mapping[str, PluginEntry[Codec]] = CODECS.view
"""Read-only view of the registry: name -> entry (target, and the class once imported)."""


def codec_names() -> list[str]:
    """Every registered codec name (entry points included), sorted."""
    return CODECS.names()


def register_codec(name: str, target: str | type[Codec], *, clobber: bool = False) -> None:
    """Add a codec under ``name``.

    Args:
        name: Registry name, case-insensitive (stored upper case).
        target: The codec class, or a lazy ``"module:Class"`` string.
        clobber: Replace an existing entry; without it a taken name is an error.

    Raises:
        InvalidArgumentError: the name is taken (and ``clobber`` is False), or ``target`` is
            neither a Codec subclass nor a ``"module:Class"`` string.
    """
    try:
        CODECS.register(name, target, clobber=clobber)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"codec {name!r}: {exc}") from None


def get_codec_class(name: str) -> type[Codec]:
    """The class registered under ``name`` (case-insensitive), imported on first use.

    Raises:
        ConfigurationError: no codec of that name; the message lists the allowed names.
        BackendNotInstalledError: the codec's module cannot be imported.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"unknown compression codec {name!r}; allowed: {codec_names()}")
    return CODECS.get_class(name)


def get_codec(name: str, **params: Any) -> Codec:
    """A codec instance: ``get_codec("ZSTD", level=5)``.

    Raises:
        ConfigurationError: unknown name (the message lists the allowed names).
        InvalidArgumentError: a parameter the codec does not take, or a bad value.
    """
    cls = get_codec_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        names: list[str] = (
            [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        )
        allowed = ", ".join(names) or "none"
        raise InvalidArgumentError(
            f"bad parameters {params!r} for codec {cls.name}: {exc}; allowed parameters: {allowed}"
        ) from exc


def codec_for_id(codec_id: int) -> type[Codec] | None:
    """The registered class whose ``codec_id`` is ``codec_id`` (loading lazy entries), or None."""
    for name in codec_names():
        try:
            cls = get_codec_class(name)
        except Exception:
            continue
        if cls.codec_id == codec_id:
            return cls
    return None
