"""Loading an ``etc/`` directory, with environment overrides layered on top.

Layering, strongest first: explicit arguments (the caller's business), then environment
variables, then the ``.properties`` files, then each key's default. An environment variable
``EXCHANGE_STORE__<KEY>`` names a key upper-cased with ``.`` written ``__`` and ``-`` written
``_`` (``EXCHANGE_STORE__EXCHANGE__BASE_DIRECTORIES`` sets ``exchange.base-directories``). It
overrides the key in every etc file that sets it; ``exchange.*`` keys also reach
``exchange-manager.properties``, ``snapshot.*`` keys ``snapshot-store.properties``. Nothing is
read at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exchange_store.config.properties import PropertiesFile, load_properties_file
from exchange_store.errors import ConfigurationError

__all__ = [
    "CONFIG_FILE",
    "ENV_PREFIX",
    "EXCHANGE_MANAGER_FILE",
    "FILESYSTEM_DIR",
    "SNAPSHOT_STORE_FILE",
    "EtcConfig",
    "env_name",
    "env_overrides",
    "load_etc",
]

ENV_PREFIX = "EXCHANGE_STORE__"
EXCHANGE_MANAGER_FILE = "exchange-manager.properties"
SNAPSHOT_STORE_FILE = "snapshot-store.properties"
CONFIG_FILE = "config.properties"
FILESYSTEM_DIR = "filesystem"


def env_name(key: str) -> str:
    """The environment variable that overrides ``key``."""
    return ENV_PREFIX + key.upper().replace(".", "__").replace("-", "_")


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Keys set through the environment: key to ``(value, variable name)``."""
    out: dict[str, tuple[str, str]] = {}
    for var, value in environ.items():
        if var.startswith(ENV_PREFIX) and len(var) > len(ENV_PREFIX):
            key = var[len(ENV_PREFIX) :].lower().replace("__", ".").replace("_", "-")
            out[key] = (value, var)
    return out


@dataclass(frozen=True, slots=True)
class EtcConfig:
    """The raw contents of an etc directory; each component validates its own file.

    Attributes:
        root: The etc directory.
        exchange_manager: ``exchange-manager.properties``, when present.
        snapshot_store: ``snapshot-store.properties``, when present.
        scheduler: ``config.properties``, when present.
        filesystems: ``filesystem/NAME.properties`` by NAME.
    """

    root: Path
    exchange_manager: PropertiesFile | None = None
    snapshot_store: PropertiesFile | None = None
    scheduler: PropertiesFile | None = None
    filesystems: dict[str, PropertiesFile] = field(default_factory=dict)

    def client_files(
        self, name: str | None, *, explicit: bool, wanted_by: PropertiesFile | None, key: str
    ) -> tuple[dict[str, Mapping[str, str]], dict[str, str]]:
        """The client file a component asks for: ``({NAME: values}, {NAME: path})``.

        Empty when the component names no client that exists and did not name one explicitly
        (then its base directories decide the client).

        Raises:
            ConfigurationError: an explicitly named client has no file (names the key).
        """
        if name is None or not (explicit or name in self.filesystems):
            return {}, {}
        pf = self.filesystem(name, wanted_by=wanted_by, key=key)
        return {name: pf.values}, {name: pf.path}

    def filesystem(
        self, name: str, *, wanted_by: PropertiesFile | None = None, key: str | None = None
    ) -> PropertiesFile:
        """The client file ``filesystem/NAME.properties``.

        Args:
            name: The client's NAME.
            wanted_by: The file that names the client, for the error message.
            key: The key in ``wanted_by`` that names it, for the error message.

        Raises:
            ConfigurationError: no such file; names it, the key that asked for it and the
                clients present.
        """
        if name in self.filesystems:
            return self.filesystems[name]
        path = self.root / FILESYSTEM_DIR / f"{name}.properties"
        asked = ""
        if wanted_by is not None:
            asked = (
                f" ({key}={name} at {wanted_by.where(key)})"
                if key is not None
                else f" (named by {wanted_by.path})"
            )
        have = ", ".join(sorted(self.filesystems)) or "none"
        raise ConfigurationError(
            f"{path}: filesystem client file not found{asked}; clients present: {have}"
        )


def _layer(
    pf: PropertiesFile | None, env: Mapping[str, tuple[str, str]], prefix: str
) -> PropertiesFile | None:
    if pf is None:
        return None
    chosen = {k: v for k, v in env.items() if k in pf.values or (prefix and k.startswith(prefix))}
    if not chosen:
        return pf
    return pf.with_overrides(
        {k: v[0] for k, v in chosen.items()},
        {k: f"environment variable {v[1]}" for k, v in chosen.items()},
    )


def load_etc(
    etc_dir: str | os.PathLike[str] = "etc", environ: Mapping[str, str] | None = None
) -> EtcConfig:
    """Read every properties file of an etc directory.

    Args:
        etc_dir: The directory.
        environ: Environment for overrides; ``os.environ`` when None.

    Raises:
        ConfigurationError: the directory is missing, or a file is malformed.
    """
    root = Path(etc_dir)
    if not root.is_dir():
        raise ConfigurationError(f"{root}: configuration directory not found")
    env = env_overrides(os.environ if environ is None else environ)

    def optional(name: str, prefix: str) -> PropertiesFile | None:
        path = root / name
        return _layer(load_properties_file(path), env, prefix) if path.is_file() else None

    filesystems: dict[str, PropertiesFile] = {}
    fs_dir = root / FILESYSTEM_DIR
    if fs_dir.is_dir():
        for path in sorted(fs_dir.glob("*.properties")):
            layered = _layer(load_properties_file(path), env, "")
            assert layered is not None
            filesystems[path.stem] = layered
    return EtcConfig(
        root=root,
        exchange_manager=optional(EXCHANGE_MANAGER_FILE, "exchange."),
        snapshot_store=optional(SNAPSHOT_STORE_FILE, "snapshot."),
        scheduler=optional(CONFIG_FILE, ""),
        filesystems=filesystems,
    )
