"""Codec names to codec classes: a lazy, read-only table plus entry points.

Built-in names map to ``"module:Class"`` strings that are imported on first use (as fsspec's
``known_implementations``). Third parties add codecs with :func:`register_codec` or through
the ``exchange_store.codecs`` entry-point group. Names are case-insensitive and stored upper
case.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from exchange_store.codecs.base import Codec
from exchange_store.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    InvalidArgumentError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "codec_for_id",
    "get_codec",
    "get_codec_class",
    "known_codecs",
    "register_codec",
]

ENTRY_POINT_GROUP = "exchange_store.codecs"

_registry: dict[str, str | type[Codec]] = {
    "NONE": "exchange_store.codecs.none:NoneCodec",
    "LZ4": "exchange_store.codecs.lz4:Lz4Codec",
    "ZSTD": "exchange_store.codecs.zstd:ZstdCodec",
}
_lock = threading.Lock()
_entry_points_loaded = False

known_codecs: Mapping[str, str | type[Codec]] = MappingProxyType(_registry)
"""Read-only view of the registry: name -> ``"module:Class"`` or the class itself."""


def _allowed() -> str:
    return ", ".join(sorted(_registry))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _lock:
        if _entry_points_loaded:
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _registry.setdefault(ep.name.upper(), ep.value)
        _entry_points_loaded = True


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
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"invalid codec name {name!r}")
    key = name.strip().upper()
    if isinstance(target, str):
        if ":" not in target:
            raise InvalidArgumentError(
                f"codec target {target!r} for {key} must be of the form 'module:Class'"
            )
    elif not (isinstance(target, type) and issubclass(target, Codec)):
        raise InvalidArgumentError(f"codec target {target!r} for {key} is not a Codec class")
    with _lock:
        if key in _registry and not clobber and _registry[key] != target:
            raise InvalidArgumentError(
                f"codec {key} is already registered as {_registry[key]!r}; pass clobber=True"
            )
        _registry[key] = target


def get_codec_class(name: str) -> type[Codec]:
    """The class registered under ``name`` (case-insensitive), imported on first use.

    Raises:
        ConfigurationError: no codec of that name; the message lists the allowed names.
        BackendNotInstalledError: the codec's module cannot be imported.
    """
    key = name.strip().upper() if isinstance(name, str) else name
    if key not in _registry:
        _load_entry_points()
    target = _registry.get(key) if isinstance(key, str) else None
    if target is None:
        raise ConfigurationError(f"unknown compression codec {name!r}; allowed: {_allowed()}")
    if isinstance(target, type):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"codec {key} needs module {module_name!r}, which cannot be imported ({exc});"
            " install the package that provides it"
        ) from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        raise ConfigurationError(f"codec {key}: {target!r} is not a Codec class")
    with _lock:
        if _registry.get(key) == target:
            _registry[key] = cls
    return cls


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
    for key in list(_registry):
        try:
            cls = get_codec_class(key)
        except Exception:
            continue
        if cls.codec_id == codec_id:
            return cls
    return None
