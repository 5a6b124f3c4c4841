"""Filesystem clients: one small ABC, a lazy registry, and the local/S3/HDFS/fsspec backends.

Only the ABC, the registry and the local client are imported here; the S3, HDFS and fsspec
clients (and their SDKs) load when a client of that type is built.
"""

from __future__ import annotations

from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream, join
from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.filesystems.registry import (
    filesystem_registry,
    get_filesystem_class,
    load_filesystem,
    register_filesystem,
)

__all__ = [
    "FileInfo",
    "FileSystemClient",
    "LocalFileSystemClient",
    "OutputStream",
    "filesystem_registry",
    "get_filesystem_class",
    "join",
    "load_filesystem",
    "register_filesystem",
]
