"""Which class serves each ``fs.client.type``, loaded lazily.

The built-in types map to ``"module:Class"`` strings so that no backend SDK is imported until a
client of that type is built. Third parties add types with :func:`register_filesystem` or through
the ``exchange_store.filesystems`` entry-point group (name = the type, value = ``module:Class``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType

from exchange_store.errors import BackendNotInstalledError, ConfigurationError
from exchange_store.filesystems._schemas import FS_CLIENT_TYPE
from exchange_store.filesystems.base import FileSystemClient

__all__ = [
    "ENTRY_POINT_GROUP",
    "FilesystemEntry",
    "filesystem_registry",
    "get_filesystem_class",
    "infer_client_type",
    "load_filesystem",
    "register_filesystem",
]

ENTRY_POINT_GROUP = "exchange_store.filesystems"


@dataclass(frozen=True, slots=True)
class FilesystemEntry:
    """One registered client type.

    Attributes:
        target: ``"package.module:ClassName"`` of a :class:`FileSystemClient` subclass.
        install_hint: What to install when the module's imports fail.
        cls: The class itself, when it was registered as a class.
    """

    target: str
    install_hint: str = ""
    cls: type[FileSystemClient] | None = None


_BUILTIN: dict[str, FilesystemEntry] = {
    "local": FilesystemEntry("exchange_store.filesystems.local:LocalFileSystemClient"),
    "s3": FilesystemEntry(
        "exchange_store.filesystems.s3:S3FileSystemClient", "pip install 's3fs>=2024.6'"
    ),
    "hdfs": FilesystemEntry(
        "exchange_store.filesystems.hdfs:HdfsFileSystemClient",
        "pip install 'pyarrow>=15' (and a Hadoop client: HADOOP_HOME, JAVA_HOME)",
    ),
    "fsspec": FilesystemEntry(
        "exchange_store.filesystems.generic:FsspecFileSystemClient",
        "pip install 'fsspec>=2024.6' (plus the protocol's package: gcsfs, adlfs, ...)",
    ),
}

_lock = threading.Lock()
_registry: dict[str, FilesystemEntry] = dict(_BUILTIN)
_entry_points_loaded = False

#: Read-only view of the registered types (type name -> entry).
filesystem_registry: Mapping[str, FilesystemEntry] = MappingProxyType(_registry)


def register_filesystem(
    type_name: str,
    target: str | type[FileSystemClient],
    *,
    install_hint: str = "",
    clobber: bool = False,
) -> None:
    """Register a client class for ``fs.client.type = type_name``.

    Args:
        type_name: The value of ``fs.client.type`` it serves.
        target: The class, or ``"module:Class"`` to import on first use.
        install_hint: Shown when importing ``target`` fails.
        clobber: Replace an existing registration instead of refusing.

    Raises:
        ValueError: ``type_name`` is taken and ``clobber`` is False, or ``target`` is malformed.
    """
    cls: type[FileSystemClient] | None = None
    if isinstance(target, type):
        if not issubclass(target, FileSystemClient):
            raise TypeError(f"{target!r} is not a FileSystemClient subclass")
        cls = target
        target = f"{target.__module__}:{target.__qualname__}"
    if ":" not in target:
        raise ValueError(f"filesystem target {target!r} must be 'module:Class'")
    with _lock:
        _load_entry_points_locked()
        if type_name in _registry and not clobber and _registry[type_name].target != target:
            raise ValueError(
                f"filesystem type {type_name!r} is already registered to "
                f"{_registry[type_name].target}; pass clobber=True to replace it"
            )
        _registry[type_name] = FilesystemEntry(target, install_hint, cls)


def _load_entry_points_locked() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(ep.name, FilesystemEntry(ep.value))


def get_filesystem_class(type_name: str, *, source: str = "<properties>") -> type[FileSystemClient]:
    """The class registered for ``type_name``, imported now.

    Raises:
        ConfigurationError: ``type_name`` is not registered (names ``source`` and the types).
        BackendNotInstalledError: its module (or a package it needs) cannot be imported; the
            message carries the install hint.
    """
    with _lock:
        _load_entry_points_locked()
        entry = _registry.get(type_name) or _registry.get(type_name.lower())
        known = sorted(_registry)
    if entry is None:
        raise ConfigurationError(
            f"{source}: {FS_CLIENT_TYPE}={type_name!r} is not a known filesystem client type; "
            f"allowed: {' | '.join(known)}"
        )
    if entry.cls is not None:
        return entry.cls
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: {entry.install_hint}" if entry.install_hint else ""
        raise BackendNotInstalledError(
            f"{source}: filesystem client type {type_name!r} needs a package that is not "
            f"installed ({exc}){hint}"
        ) from exc
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigurationError(
                f"{source}: filesystem client type {type_name!r}: {entry.target} does not exist"
            )
    if not (isinstance(obj, type) and issubclass(obj, FileSystemClient)):
        raise ConfigurationError(
            f"{source}: filesystem client type {type_name!r}: {entry.target} is not a "
            "FileSystemClient"
        )
    return obj


def infer_client_type(roots: Sequence[str]) -> str:
    """The client type the roots' scheme implies (``s3://`` -> s3, plain paths -> local)."""
    schemes = {r.split("://", 1)[0].lower() if "://" in r else "file" for r in roots}
    if len(schemes) != 1:
        raise ConfigurationError(
            f"base directories {', '.join(roots)} mix URI schemes; one client serves one scheme"
        )
    scheme = schemes.pop()
    return {"file": "local", "s3": "s3", "s3a": "s3", "hdfs": "hdfs"}.get(scheme, "fsspec")


def load_filesystem(
    properties: Mapping[str, str],
    roots: Sequence[str],
    *,
    source: str = "<properties>",
    name: str = "default",
) -> FileSystemClient:
    """Build the client an ``etc/filesystem/NAME.properties`` file describes.

    Args:
        properties: The file's keys; ``fs.client.type`` picks the class (when absent, the scheme
            of the roots does: plain paths and ``file://`` -> local, ``s3://`` -> s3,
            ``hdfs://`` -> hdfs, anything else -> fsspec).
        roots: The base directories (paths or URIs) the client is confined to.
        source: Where the properties came from, for messages (the file path).
        name: The client's name (``NAME`` of the file), for messages.

    Raises:
        ConfigurationError: an unknown type or key, a bad value, roots the type cannot serve.
        BackendNotInstalledError: the type's package is missing.
    """
    roots = [r.strip() for r in roots if r.strip()]
    if not roots:
        raise ConfigurationError(f"{source}: filesystem client {name!r} has no base directories")
    type_name = properties.get(FS_CLIENT_TYPE, "").strip() or infer_client_type(roots)
    cls = get_filesystem_class(type_name, source=source)
    return cls.from_properties(dict(properties), roots, source=source)
