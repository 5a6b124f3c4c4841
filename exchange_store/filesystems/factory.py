"""The one way a component (exchange, snapshots, admin tools) gets its filesystem client.

A component names a client (``exchange-filesystem-type``, ``snapshot-filesystem-type``) or not:

* a named client with a file ``etc/filesystem/NAME.properties`` (or an entry of the
  ``filesystems`` mapping) is built from that file;
* a name given explicitly without such a file is an error naming the key and the clients present;
* otherwise the base directories' scheme decides the client, with its defaults: plain paths and
  ``file://`` the local client, ``s3://`` S3 with the default AWS credential chain, ``hdfs://``
  HDFS, anything else fsspec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exchange_store.errors import ConfigurationError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.registry import load_filesystem

__all__ = ["load_component_client"]


def load_component_client(
    roots: Sequence[str],
    name: str | None,
    filesystems: Mapping[str, Mapping[str, str]],
    *,
    explicit: bool,
    key: str,
    source: str,
    sources: Mapping[str, str] | None = None,
) -> FileSystemClient:
    """The client of a component whose base directories are ``roots``.

    Args:
        roots: The component's base directories.
        name: The client NAME the component's configuration gives (or its default).
        filesystems: Client properties by NAME (``etc/filesystem/NAME.properties``).
        explicit: Whether ``name`` was set by the user (then it must exist).
        key: The key that names the client, for messages.
        source: The component's configuration file, for messages.
        sources: Where each client's properties came from, for messages.

    Raises:
        ConfigurationError: an explicit name without a client, or a wrong client file.
        BackendNotInstalledError: the client type's package is missing.
    """
    if name is not None and name in filesystems:
        where = (sources or {}).get(name, f"filesystem {name}")
        return load_filesystem(filesystems[name], roots, source=where, name=name)
    if explicit:
        have = ", ".join(sorted(filesystems)) or "none"
        raise ConfigurationError(
            f"{source}: {key}={name} names no filesystem client; add etc/filesystem/{name}"
            f".properties (fs.client.type = local | hdfs | s3 | fsspec); clients present: {have}"
        )
    return load_filesystem({}, roots, source=source, name=name or "default")
