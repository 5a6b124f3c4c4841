"""Where the admin tools look: the exchange storage and snapshot store an etc directory names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from exchange_store.config import EtcConfig, load_etc
from exchange_store.errors import ConfigurationError
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.local import LocalFileSystemClient
from exchange_store.filesystems.registry import load_filesystem

__all__ = ["ExchangeStorage", "exchange_storage_from_etc", "load_client"]


@dataclass(frozen=True, slots=True)
class ExchangeStorage:
    """The exchange manager's filesystem client and base directories.

    Attributes:
        client: The client confined to the base directories.
        roots: The base directories (absolute paths or URIs).
        lease_ttl: The configured ``exchange.lease-ttl`` (for display).
    """

    client: FileSystemClient
    roots: tuple[str, ...]
    lease_ttl: float = 60.0


def load_client(
    etc: EtcConfig | None,
    name: str,
    roots: Sequence[str],
    *,
    explicit: bool,
    wanted_by: str,
) -> FileSystemClient:
    """Build the client ``etc/filesystem/NAME.properties`` describes for ``roots``.

    Without such a file, local base directories get the built-in local client.

    Raises:
        ConfigurationError: the file is missing and the roots are not local (or it was named
            explicitly); names the file that asked for it.
    """
    if etc is not None and name in etc.filesystems:
        pf = etc.filesystems[name]
        return load_filesystem(pf.values, roots, source=pf.path, name=name)
    local = all("://" not in r or r.startswith("file://") for r in roots)
    if local and not explicit:
        return LocalFileSystemClient(roots)
    where = f"{etc.root}/filesystem/{name}.properties" if etc is not None else f"{name}.properties"
    raise ConfigurationError(f"{where}: filesystem client file not found (named by {wanted_by})")


def exchange_storage_from_etc(
    etc_dir: str | os.PathLike[str], base_dir: str | None = None
) -> ExchangeStorage | None:
    """The exchange storage of ``etc_dir``; None when it has no exchange-manager.properties.

    Args:
        etc_dir: The etc directory (may be missing when ``base_dir`` is given).
        base_dir: Overrides ``exchange.base-directories`` (one directory).
    """
    etc = None if base_dir is not None and not os.path.isdir(etc_dir) else load_etc(etc_dir)
    pf = etc.exchange_manager if etc is not None else None
    if pf is None:
        if base_dir is None:
            return None
        values: dict[str, str] = {"exchange.base-directories": base_dir}
        source = "<--base-dir>"
        lines: dict[str, int] = {}
        origins: dict[str, str] = {}
    else:
        values = dict(pf.values)
        source, lines, origins = pf.path, dict(pf.lines), dict(pf.origins)
        if base_dir is not None:
            values["exchange.base-directories"] = base_dir
            origins["exchange.base-directories"] = "--base-dir"
    config = ExchangeManagerConfig.from_properties(values, source, lines, origins)
    client = load_client(
        etc,
        config.filesystem_name,
        config.base_directories,
        explicit=config.filesystem_name_explicit,
        wanted_by=source,
    )
    return ExchangeStorage(client, config.base_directories, config.lease_ttl)
