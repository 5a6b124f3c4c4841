"""Which class serves each ``fs.client.type``, loaded lazily.

The built-in types map to ``"module:Class"`` strings so that no backend SDK is imported until a
client of that type is built. Third parties add types with :func:`register_filesystem` or through
the ``exchange_store.filesystems`` entry-point group (name = the type, value = ``module:Class``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exchange_store.errors import ConfigurationError
from exchange_store.filesystems._schemas import FS_CLIENT_TYPE
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.plugins import PluginEntry, PluginRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "FILESYSTEMS",
    "FilesystemEntry",
    "filesystem_registry",
    "get_filesystem_class",
    "infer_client_type",
    "load_filesystem",
    "register_filesystem",
]

ENTRY_POINT_GROUP = "exchange_store.filesystems"

FilesystemEntry = PluginEntry
"""One registered client type (``target``, ``install_hint``, ``cls``)."""

FILESYSTEMS: PluginRegistry[FileSystemClient] = PluginRegistry(
    "filesystem client type",
    FileSystemClient,
    ENTRY_POINT_GROUP,
    {
        "local": "exchange_store.filesystems.local:LocalFileSystemClient",
        "s3": ("exchange_store.filesystems.s3:S3FileSystemClient", "pip install 's3fs>=2024.6'"),
        "hdfs": (
            "exchange_store.filesystems.hdfs:HdfsFileSystemClient",
            "pip install 'pyarrow>=15' (and a Hadoop client: HADOOP_HOME, JAVA_HOME)",
        ),
        "fsspec": (
            "exchange_store.filesystems.fsspec:FsspecFileSystemClient",
            "pip install 'fsspec>=2024.6' (plus the protocol's package: gcsfs, adlfs, ...)",
        ),
    },
    normalize=str.lower,
)
_registry = FILESYSTEMS._entries  # tests save and restore it

#: Read-only view of the registered types (type name -> entry).
filesystem_registry: Mapping[str, PluginEntry[FileSystemClient]] = FILESYSTEMS.view


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
        TypeError: ``target`` is a class that is not a FileSystemClient.
    """
    FILESYSTEMS.register(type_name, target, install_hint=install_hint, clobber=clobber)


def get_filesystem_class(type_name: str, *, source: str = "<properties>") -> type[FileSystemClient]:
    """The class registered for ``type_name`` (or a ``"module:Class"`` path), imported now.

    Raises:
        ConfigurationError: ``type_name`` is not registered (names ``source`` and the types).
        BackendNotInstalledError: its module (or a package it needs) cannot be imported; the
            message carries the install hint.
    """
    return FILESYSTEMS.get_class(type_name, source=f"{source}: {FS_CLIENT_TYPE}")


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
