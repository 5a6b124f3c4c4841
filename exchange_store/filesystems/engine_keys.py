"""Trino's and openLooKeng's storage keys in ``exchange-manager.properties``, unchanged.

Trino configures its exchange's storage in the exchange manager's own file
(``exchange.s3.*``, ``exchange.gcs.*``, ``exchange.azure.*``, the HDFS plugin's
``hdfs.config.resources``); here a client is normally an ``etc/filesystem/NAME.properties``
file. When no such file is named or present, :func:`client_from_engine_keys` builds the client
those keys describe, chosen by the base directories' scheme. Keys that have no meaning here are
accepted and logged once at INFO (:func:`log_compatibility_keys`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from exchange_store.config import Schema
from exchange_store.errors import ConfigurationError
from exchange_store.filesystems._schemas import HDFS_SCHEMA, S3_SCHEMA
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.registry import load_filesystem

__all__ = [
    "COMPATIBILITY_ONLY",
    "ENGINE_STORAGE_PREFIXES",
    "client_from_engine_keys",
    "has_engine_storage_keys",
    "log_compatibility_keys",
]

_log = logging.getLogger(__name__)
_logged: set[str] = set()

ENGINE_STORAGE_PREFIXES = ("exchange.s3.", "exchange.gcs.", "exchange.azure.", "exchange.hdfs.")
_HDFS_KEYS = ("hdfs.config.resources",)

# Keys accepted for compatibility that change nothing here, with why.
_BUFFERS = "the sink bounds memory with exchange.sink-max-buffer-size"
COMPATIBILITY_ONLY: dict[str, str] = {
    "exchange.sink-buffer-pool-min-size": _BUFFERS,
    "exchange.sink-buffers-per-partition": _BUFFERS,
    "exchange.source-max-files-per-reader": "sources read the pieces their handles name",
    "exchange.file-listing-parallelism": "readers use manifests, never listings",
    "exchange.prefix-groups": "task partitions spread over 256 key prefixes by hash",
    "exchange.s3.async-client-max-pending-connection-acquires": "botocore has no such queue",
    "exchange.s3.async-client-connection-acquisition-timeout": "botocore has no such timeout",
    "exchange.s3.sse.enabled": "use exchange.s3.sse.type",
    "exchange.hdfs.skip-directory-scheme-validation": "base directories are checked by scheme",
}


def has_engine_storage_keys(values: Mapping[str, str]) -> bool:
    """Whether ``values`` configure storage the Trino way."""
    return any(k.startswith(ENGINE_STORAGE_PREFIXES) or k in _HDFS_KEYS for k in values)


def log_compatibility_keys(values: Mapping[str, str], source: str) -> None:
    """Log once per key (at INFO) the keys accepted for compatibility only."""
    for key in sorted(values):
        why = COMPATIBILITY_ONLY.get(key)
        if why is not None and key not in _logged:
            _logged.add(key)
            _log.info("%s: %s accepted for compatibility, no effect here (%s)", source, key, why)


def _scheme(roots: Sequence[str]) -> str:
    schemes = {r.split("://", 1)[0].lower() if "://" in r else "file" for r in roots}
    if len(schemes) != 1:
        raise ConfigurationError(f"base directories {', '.join(roots)} mix schemes")
    return schemes.pop()


def client_from_engine_keys(
    values: Mapping[str, str],
    roots: Sequence[str],
    *,
    manager_name: str,
    source: str,
) -> FileSystemClient | None:
    """The client Trino's keys describe for ``roots``, or None when they describe none.

    Args:
        values: The raw keys of ``exchange-manager.properties``.
        roots: The base directories.
        manager_name: ``exchange-manager.name`` (``hdfs`` is Trino's HDFS exchange plugin).
        source: The file, for messages.

    Raises:
        ConfigurationError: keys of another storage than the base directories', or a bad
            value (names the key).
    """
    scheme = _scheme(roots)
    given = sorted(k for k in values if k.startswith(ENGINE_STORAGE_PREFIXES))
    if scheme in ("s3", "s3a", "s3n"):
        _only(given, "exchange.s3.", scheme, source)
        _unsupported_s3(values, source)
        props = {"fs.client.type": "s3"}
        # The S3 client file accepts Trino's names as aliases of its own keys.
        props.update(_known(values, S3_SCHEMA))
        return load_filesystem(props, roots, source=source, name="exchange")
    if scheme in ("gs", "gcs"):
        _only(given, "exchange.gcs.", scheme, source)
        return _gcs(values, roots, source)
    if scheme in ("abfs", "abfss", "az", "wasb", "wasbs"):
        _only(given, "exchange.azure.", scheme, source)
        return _azure(values, roots, source)
    if scheme == "hdfs" or manager_name == "hdfs":
        _only(given, "exchange.hdfs.", scheme, source)
        props = {"fs.client.type": "hdfs"}
        props.update(_known(values, HDFS_SCHEMA))
        return load_filesystem(props, roots, source=source, name="exchange")
    if given:
        raise ConfigurationError(
            f"{source}: {given[0]} configures object-store storage but the base directories "
            f"are {scheme} paths ({', '.join(roots)})"
        )
    return None


def _known(values: Mapping[str, str], schema: Schema) -> dict[str, str]:
    """The keys of ``values`` that ``schema`` accepts (by name or alias)."""
    names = set(schema.names())
    return {k: v for k, v in values.items() if k in names}


def _only(given: Sequence[str], prefix: str, scheme: str, source: str) -> None:
    other = [k for k in given if not k.startswith(prefix) and k not in COMPATIBILITY_ONLY]
    if other:
        raise ConfigurationError(
            f"{source}: {other[0]} does not apply to {scheme}:// base directories (use "
            f"{prefix}* keys)"
        )


def _unsupported_s3(values: Mapping[str, str], source: str) -> None:
    for key in ("exchange.s3.iam-role", "exchange.s3.external-id"):
        if values.get(key) and key not in _logged:
            _logged.add(key)
            _log.warning(
                "%s: %s is not supported by this S3 client: assume the role through the default "
                "AWS credential chain instead (AWS_ROLE_ARN with web identity, or a profile "
                "with role_arn and external_id)",
                source,
                key,
            )


def _gcs(values: Mapping[str, str], roots: Sequence[str], source: str) -> FileSystemClient:
    from exchange_store.filesystems.fsspec import ObjectStoreFsspecFileSystemClient

    key_file = values.get("exchange.gcs.json-key-file-path", "").strip()
    key_json = values.get("exchange.gcs.json-key", "").strip()
    if key_file and key_json:
        raise ConfigurationError(
            f"{source}: exchange.gcs.json-key-file-path and exchange.gcs.json-key are both "
            "set; give one"
        )
    token: Any
    if key_json:
        try:
            token = json.loads(key_json)
        except ValueError as exc:
            raise ConfigurationError(
                f"{source}: exchange.gcs.json-key is not JSON: {exc}"
            ) from None
    elif key_file:
        if not os.path.isfile(key_file):
            raise ConfigurationError(
                f"{source}: exchange.gcs.json-key-file-path={key_file}: file not found"
            )
        token = key_file
    elif os.environ.get("STORAGE_EMULATOR_HOST"):
        token = "anon"  # an emulator takes no credentials
    else:
        token = "google_default"
    return ObjectStoreFsspecFileSystemClient(roots, protocol="gs", storage_options={"token": token})


def _azure(values: Mapping[str, str], roots: Sequence[str], source: str) -> FileSystemClient:
    from exchange_store.config import parse_data_size
    from exchange_store.filesystems.fsspec import ObjectStoreFsspecFileSystemClient

    options: dict[str, Any] = {}
    connection = values.get("exchange.azure.connection-string", "").strip()
    if connection:
        options["connection_string"] = connection
    else:
        host = roots[0].split("://", 1)[1].split("/", 1)[0]
        if "@" not in host:
            raise ConfigurationError(
                f"{source}: without exchange.azure.connection-string the base directories must "
                "name the account: abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
            )
        options["account_name"] = host.split("@", 1)[1].split(".", 1)[0]
        options["anon"] = False  # the default Azure credential chain
    endpoint = values.get("exchange.azure.endpoint", "").strip()
    if endpoint:
        options["account_host"] = endpoint.split("://", 1)[-1].rstrip("/")
    if values.get("exchange.azure.block-size"):
        options["blocksize"] = parse_data_size(values["exchange.azure.block-size"])
    retries = values.get("exchange.azure.max-error-retries")
    return ObjectStoreFsspecFileSystemClient(
        roots,
        protocol="abfs",
        storage_options=options,
        max_retries=int(retries) if retries else None,
    )
