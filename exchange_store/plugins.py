"""One registry mechanism for the extension points (codecs, filesystem clients).

A :class:`PluginRegistry` maps a name to a class, imported lazily from ``"module:Class"`` on
first use (fsspec's ``known_implementations``). Third parties add entries with
:meth:`PluginRegistry.register` or through an entry-point group (name = the entry's name,
value = ``"module:Class"``), read once on first look-up. A name that is itself a
``"module:Class"`` path is also accepted (pyiceberg's ``py-io-impl``), so a class can be used
without registering it in every process. The public view is read-only and registering over a
taken name needs ``clobber=True``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Generic, TypeVar, cast

from exchange_store.errors import BackendNotInstalledError, ConfigurationError

__all__ = ["PluginEntry", "PluginRegistry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PluginEntry(Generic[T]):
    """One registered name.

    Attributes:
        target: ``"package.module:ClassName"``.
        install_hint: What to install when the module's imports fail.
        cls: The class, once imported (or when registered as a class).
    """

    target: str
    install_hint: str = ""
    cls: type[T] | None = None


class PluginRegistry(Generic[T]):
    """Names to subclasses of ``base``, lazily imported; see the module docstring.

    Args:
        kind: What the entries are, for messages ("codec", "filesystem client type").
        base: The ABC every entry must subclass.
        group: The entry-point group read on first look-up.
        builtin: Built-in names to ``"module:Class"`` or ``(target, install hint)``.
        normalize: Turns a name into its key (codec names are upper-cased).
    """

    def __init__(
        self,
        kind: str,
        base: type,
        group: str,
        builtin: Mapping[str, str | tuple[str, str]],
        *,
        normalize: Callable[[str], str] = str,
    ) -> None:
        self.kind = kind
        self.base = base
        self.group = group
        self._normalize = normalize
        self._lock = threading.Lock()
        self._entries: dict[str, PluginEntry[T]] = {}
        for name, spec in builtin.items():
            target, hint = (spec, "") if isinstance(spec, str) else spec
            self._entries[normalize(name)] = PluginEntry(target, hint)
        self._entry_points_loaded = False
        #: Read-only view: name -> entry.
        self.view: Mapping[str, PluginEntry[T]] = MappingProxyType(self._entries)

    def register(
        self,
        name: str,
        target: str | type[T],
        *,
        install_hint: str = "",
        clobber: bool = False,
    ) -> None:
        """Register ``target`` (a class or ``"module:Class"``) under ``name``.

        Raises:
            ValueError: the name is taken by another target and ``clobber`` is False, or the
                target is malformed.
            TypeError: a class that does not subclass the registry's base.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        key = self._normalize(name.strip())
        cls: type[T] | None = None
        if isinstance(target, type):
            if not issubclass(target, self.base):
                raise TypeError(f"{target!r} is not a {self.base.__name__} subclass")
            cls = target
            target = f"{target.__module__}:{target.__qualname__}"
        if not isinstance(target, str) or ":" not in target:
            raise ValueError(f"{self.kind} target {target!r} for {key} must be 'module:Class'")
        with self._lock:
            self._load_entry_points_locked()
            old = self._entries.get(key)
            if old is not None and not clobber and old.target != target:
                raise ValueError(
                    f"{self.kind} {key!r} is already registered to {old.target}; "
                    "pass clobber=True to replace it"
                )
            self._entries[key] = PluginEntry(target, install_hint, cls)

    def names(self) -> list[str]:
        """Every registered name (entry points included), sorted."""
        with self._lock:
            self._load_entry_points_locked()
            return sorted(self._entries)

    def entry(self, name: str) -> PluginEntry[T] | None:
        """The entry for ``name``: registered, or a ``"module:Class"`` path; None if unknown."""
        key = self._normalize(name.strip()) if isinstance(name, str) else name
        with self._lock:
            self._load_entry_points_locked()
            entry = self._entries.get(key)
        if entry is None and isinstance(name, str) and ":" in name:
            return PluginEntry(name.strip())
        return entry

    def get_class(self, name: str, *, source: str = "") -> type[T]:
        """The class for ``name``, imported now.

        Raises:
            ConfigurationError: unknown name, or a target that is not a subclass of the base
                (the message lists the registered names).
            BackendNotInstalledError: its module (or a package it needs) cannot be imported;
                the message carries the install hint.
        """
        where = f"{source}: " if source else ""
        entry = self.entry(name)
        if entry is None:
            raise ConfigurationError(
                f"{where}unknown {self.kind} {name!r}; allowed: {' | '.join(self.names())} "
                "(or a 'module:Class' path)"
            )
        if entry.cls is not None:
            return entry.cls
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f"; install it with: {entry.install_hint}" if entry.install_hint else ""
            raise BackendNotInstalledError(
                f"{where}{self.kind} {name!r} needs a package that is not installed "
                f"(importing {module_name}: {exc}){hint}"
            ) from exc
        obj: object = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ConfigurationError(
                    f"{where}{self.kind} {name!r}: {entry.target} does not exist"
                )
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise ConfigurationError(
                f"{where}{self.kind} {name!r}: {entry.target} is not a {self.base.__name__} class"
            )
        cls = cast("type[T]", obj)  # checked against the base just above
        key = self._normalize(name.strip())
        with self._lock:
            if key in self._entries and self._entries[key].target == entry.target:
                self._entries[key] = PluginEntry(entry.target, entry.install_hint, cls)
        return cls

    def _load_entry_points_locked(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            self._entries.setdefault(self._normalize(ep.name), PluginEntry(ep.value))
