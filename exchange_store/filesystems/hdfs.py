"""The HDFS client, on ``pyarrow.fs.HadoopFileSystem`` (libhdfs through JNI).

Roots are ``hdfs://namenode:port/path`` URIs, all on one namenode (host and port come from the
URI; ``hdfs:///path`` uses ``fs.defaultFS`` of the Hadoop configuration). The Hadoop client must
be installed as pyarrow documents (``HADOOP_HOME``, ``JAVA_HOME``, ``CLASSPATH`` from
``hadoop classpath --glob``).

Keys: ``hdfs.config.resources`` (comma-separated Hadoop XML files; their properties are passed
to libhdfs as ``extra_conf``), ``hdfs.authentication.type`` NONE|KERBEROS,
``hdfs.krb5.conf.path`` (exported as ``KRB5_CONFIG`` for the JVM and ``kinit``),
``hdfs.krb5.keytab.path`` and ``hdfs.krb5.principal`` (both required with KERBEROS: a ticket is
obtained with ``kinit -kt KEYTAB PRINCIPAL`` into ``hdfs.krb5.ticket-cache-path`` or a private
cache, and passed as ``kerb_ticket``), ``hdfs.user``, ``hdfs.replication``.

Atomicity:
    * ``create``: bytes go to ``<path>.<uuid>.partial``, renamed into place on ``close()``
      (an existing file at ``<path>`` is replaced: pyarrow deletes it, then renames).
    * ``write_exclusive``: a temporary file, then a check that ``<path>`` is absent, then the
      rename. Not atomic against a concurrent writer between check and rename
      (``supports_atomic_create = False``): pyarrow's ``move`` clobbers an existing file.
    * ``write_file``: temporary file, then rename over the target.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.filesystems._partial import PARTIAL_SUFFIX, MoveOnCloseStream, partial_name
from exchange_store.filesystems._schemas import HDFS_SCHEMA
from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = ["HdfsFileSystemClient", "hdfs_connect_kwargs", "parse_hadoop_xml"]


def _pafs() -> Any:
    """``pyarrow.fs``, imported on first use (it loads libhdfs lazily, at connect time)."""
    return importlib.import_module("pyarrow.fs")


def parse_hadoop_xml(path: str) -> dict[str, str]:
    """Read a Hadoop ``*-site.xml`` file into ``{name: value}``.

    Raises:
        ConfigurationError: the file is missing or is not a Hadoop configuration file.
    """
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise ConfigurationError(f"hdfs.config.resources: file not found: {path}") from None
    except (ET.ParseError, OSError) as exc:
        raise ConfigurationError(f"hdfs.config.resources: cannot read {path}: {exc}") from None
    out: dict[str, str] = {}
    for prop in tree.getroot().iter("property"):
        name = (prop.findtext("name") or "").strip()
        if name:
            out[name] = (prop.findtext("value") or "").strip()
    return out


def _authority(roots: Sequence[str]) -> tuple[str, int]:
    authorities = set()
    for root in roots:
        parts = urlsplit(root)
        if parts.scheme != "hdfs":
            raise InvalidArgumentError(f"base directory {root!r} is not an hdfs:// URI")
        authorities.add((parts.hostname or "default", parts.port or 0))
    if len(authorities) != 1:
        raise InvalidArgumentError(
            f"base directories {', '.join(roots)} are on different namenodes; use one client each"
        )
    return authorities.pop()


def hdfs_connect_kwargs(
    values: Mapping[str, Any], roots: Sequence[str], *, source: str = "<properties>"
) -> dict[str, Any]:
    """Turn validated HDFS properties into ``pyarrow.fs.HadoopFileSystem`` kwargs (pure).

    Kerberos settings are returned under the private key ``_kerberos`` (keytab, principal,
    krb5.conf, ticket cache), which the client consumes before connecting.

    Raises:
        ConfigurationError: KERBEROS without a keytab or principal, a missing keytab or
            configuration file, roots that are not on one namenode.
    """
    try:
        host, port = _authority(roots)
    except InvalidArgumentError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None
    extra_conf: dict[str, str] = {}
    for resource in values.get("hdfs.config.resources") or ():
        try:
            extra_conf.update(parse_hadoop_xml(resource))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "replication": int(values.get("hdfs.replication") or 3),
    }
    if values.get("hdfs.block-size"):
        kwargs["default_block_size"] = int(values["hdfs.block-size"])
    if values.get("hdfs.user"):
        kwargs["user"] = values["hdfs.user"]
    if values.get("hdfs.authentication.type", "NONE") == "KERBEROS":
        keytab = values.get("hdfs.krb5.keytab.path")
        principal = values.get("hdfs.krb5.principal")
        missing = [
            k
            for k, v in (("hdfs.krb5.keytab.path", keytab), ("hdfs.krb5.principal", principal))
            if not v
        ]
        if missing:
            raise ConfigurationError(
                f"{source}: hdfs.authentication.type=KERBEROS requires {' and '.join(missing)}"
            )
        for key in ("hdfs.krb5.keytab.path", "hdfs.krb5.conf.path"):
            path = values.get(key)
            if path and not os.path.isfile(path):
                raise ConfigurationError(f"{source}: {key}={path}: file not found")
        extra_conf.setdefault("hadoop.security.authentication", "kerberos")
        kwargs["_kerberos"] = {
            "keytab": keytab,
            "principal": principal,
            "krb5_conf": values.get("hdfs.krb5.conf.path"),
            "ticket_cache": values.get("hdfs.krb5.ticket-cache-path"),
        }
    elif values.get("hdfs.krb5.ticket-cache-path"):
        kwargs["kerb_ticket"] = values["hdfs.krb5.ticket-cache-path"]
    if extra_conf:
        kwargs["extra_conf"] = extra_conf
    return kwargs


def _kinit(kerberos: Mapping[str, Any]) -> str:
    """Obtain a ticket with ``kinit -kt``; returns the ticket cache path."""
    cache = kerberos.get("ticket_cache") or os.path.join(
        tempfile.gettempdir(), f"krb5cc_exchange_store_{os.getuid()}_{os.getpid()}"
    )
    env = dict(os.environ, KRB5CCNAME=cache)
    if kerberos.get("krb5_conf"):
        env["KRB5_CONFIG"] = kerberos["krb5_conf"]
    command = ["kinit", "-kt", kerberos["keytab"], "-c", cache, kerberos["principal"]]
    try:
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise ConfigurationError("KERBEROS authentication needs the kinit command") from None
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise ConfigurationError(
            f"kinit -kt {kerberos['keytab']} {kerberos['principal']} failed: {detail}"
        ) from None
    return cache


class HdfsFileSystemClient(FileSystemClient):
    """A client over HDFS through pyarrow (see the module docstring for atomicity)."""

    scheme = "hdfs"
    supports_atomic_create = False
    supports_ranged_reads = True

    def __init__(
        self, roots: Sequence[str], *, connect_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        """Create a client; it connects on first use.

        Args:
            roots: ``hdfs://namenode:port/path`` base directories (one namenode).
            connect_kwargs: ``pyarrow.fs.HadoopFileSystem`` kwargs (from
                :func:`hdfs_connect_kwargs`).
        """
        host, port = _authority(roots)
        super().__init__(roots)
        self._connect_kwargs = dict(connect_kwargs or {"host": host, "port": port})
        self._prefix = f"hdfs://{urlsplit(self.roots[0]).netloc}"
        self._fs_lock = threading.Lock()
        self._fs: Any = None

    @classmethod
    def from_properties(
        cls, properties: dict[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> HdfsFileSystemClient:
        """Build a client from ``etc/filesystem/NAME.properties`` (``hdfs.*`` keys)."""
        values = HDFS_SCHEMA.parse(properties, source)
        return cls(roots, connect_kwargs=hdfs_connect_kwargs(values, roots, source=source))

    @property
    def fs(self) -> Any:
        """The ``pyarrow.fs.HadoopFileSystem`` (connected on first use)."""
        if self._fs is None:
            with self._fs_lock:
                if self._fs is None:
                    pafs = _pafs()
                    kwargs = dict(self._connect_kwargs)
                    kerberos = kwargs.pop("_kerberos", None)
                    if kerberos:
                        if kerberos.get("krb5_conf"):
                            os.environ.setdefault("KRB5_CONFIG", kerberos["krb5_conf"])
                        kwargs["kerb_ticket"] = _kinit(kerberos)
                    self._fs = pafs.HadoopFileSystem(**kwargs)
        return self._fs

    def close(self) -> None:
        """Drop the connection."""
        self._fs = None

    # ------------------------------------------------------------------ paths

    def _native(self, path: str) -> str:
        return urlsplit(path).path or "/"

    def _uri(self, native: str) -> str:
        return self._prefix + ("/" + native.lstrip("/"))

    # ------------------------------------------------------------------ primitives

    def _file_type(self, native: str) -> Any:
        pafs = _pafs()
        return self.fs.get_file_info(native), pafs.FileType

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        self.fs.create_dir(native.rsplit("/", 1)[0] or "/", recursive=True)
        return MoveOnCloseStream(
            native, lambda t: self.fs.open_output_stream(t), self.fs.move, self.fs.delete_file
        )

    def _write_temp(self, native: str, data: bytes) -> str:
        self.fs.create_dir(native.rsplit("/", 1)[0] or "/", recursive=True)
        tmp = partial_name(native)
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        return tmp

    def _write_exclusive(self, native: str, data: bytes) -> None:
        tmp = self._write_temp(native, data)
        try:
            info, file_type = self._file_type(native)
            if info.type != file_type.NotFound:
                raise FileExistsError(f"{native} exists")
            self.fs.move(tmp, native)
        finally:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.delete_file(tmp)

    def _write_replace(self, native: str, data: bytes) -> None:
        tmp = self._write_temp(native, data)
        try:
            self.fs.move(tmp, native)
        except BaseException:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.delete_file(tmp)
            raise

    def _read(self, native: str) -> bytes:
        with self.fs.open_input_stream(native) as f:
            return bytes(f.read())

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        with self.fs.open_input_file(native) as f:
            size = f.size()
            if offset >= size:
                return b""
            return bytes(f.read_at(min(length, size - offset), offset))

    def _entry(self, info: Any, file_type: Any) -> FileInfo:
        is_dir = info.type == file_type.Directory
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        return FileInfo(
            path=self._uri(info.path),
            size=0 if is_dir else int(info.size or 0),
            mtime=mtime,
            is_dir=is_dir,
        )

    def _info(self, native: str) -> FileInfo:
        info, file_type = self._file_type(native)
        if info.type == file_type.NotFound:
            raise FileNotFoundError(native)
        return self._entry(info, file_type)

    def _list(self, native: str) -> list[FileInfo]:
        pafs = _pafs()
        info, file_type = self._file_type(native)
        if info.type != file_type.Directory:
            return []
        entries = self.fs.get_file_info(pafs.FileSelector(native, allow_not_found=True))
        return [self._entry(e, file_type) for e in entries if not e.path.endswith(PARTIAL_SUFFIX)]

    def _delete(self, native: str) -> None:
        info, file_type = self._file_type(native)
        if info.type == file_type.File:
            self.fs.delete_file(native)

    def _delete_recursive(self, native: str) -> None:
        info, file_type = self._file_type(native)
        if info.type == file_type.Directory:
            self.fs.delete_dir(native)
        elif info.type == file_type.File:
            self.fs.delete_file(native)
