"""Where the admin tools look: the exchange storage and snapshot store an etc directory names."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exchange_store.config import EtcConfig, PropertiesFile, load_etc
from exchange_store.exchange.config import ExchangeManagerConfig
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.factory import load_component_client

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
    key: str,
    wanted_by: PropertiesFile | None,
) -> FileSystemClient:
    """Build the client a component of ``etc`` names for ``roots``; see ``load_component_client``.

    Raises:
        ConfigurationError: an explicit name without ``etc/filesystem/NAME.properties`` (names
            the file that asked for it), or a wrong client file.
    """
    filesystems: dict[str, Mapping[str, str]] = {}
    sources: dict[str, str] = {}
    if etc is not None:
        filesystems, sources = etc.client_files(
            name, explicit=explicit, wanted_by=wanted_by, key=key
        )
    source = wanted_by.path if wanted_by is not None else "<--base-dir>"
    return load_component_client(
        roots, name, filesystems, explicit=explicit, key=key, source=source, sources=sources
    )


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
        key="exchange-filesystem-type",
        wanted_by=pf,
    )
    return ExchangeStorage(client, config.base_directories, config.lease_ttl)
