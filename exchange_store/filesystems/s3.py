"""The S3 client, on s3fs (any S3-compatible store: AWS, MinIO, moto).

Roots are ``s3://bucket/prefix`` URIs; native paths are ``bucket/key`` as s3fs writes them.
Requests go through s3fs's botocore client (``call_s3``), so the S3 semantics are explicit.

Atomicity:
    * ``create``: a multipart upload whose parts are ``s3.upload.part-size`` bytes, completed on
      ``close()`` and aborted on ``abort()`` (or a failure in ``close()``): nothing is visible
      before ``close()``. A stream shorter than one part is a single ``PutObject`` on close.
    * ``write_exclusive``: ``PutObject`` with ``If-None-Match: *``; S3 answers
      ``412 PreconditionFailed`` (-> ``FileExistsError``) when the key exists, atomically against
      concurrent writers. ``409 ConditionalRequestConflict`` (a concurrent conditional write in
      flight) is retried.
    * ``write_file``: ``PutObject`` (S3 objects are replaced atomically).

Directories are key prefixes: a directory exists while a key is under it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.filesystems._s3_errors import classify_s3_error, s3_error_code
from exchange_store.filesystems._schemas import S3_SCHEMA
from exchange_store.filesystems.base import FileInfo, FileSystemClient, OutputStream

__all__ = ["S3FileSystemClient", "s3fs_kwargs"]

_SCHEMES = ("s3://", "s3a://")
_DELETE_BATCH = 1000


def s3fs_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn validated S3 properties (``S3_SCHEMA.parse`` output) into ``S3FileSystem`` kwargs.

    Pure: no network, no s3fs import. Absent credentials leave ``key``/``secret`` out, so
    botocore uses the default AWS credential chain.

    Args:
        values: Typed values by key name (``s3.endpoint``, ``s3.max-error-retries``, ...).

    Returns:
        Keyword arguments for ``s3fs.S3FileSystem``.
    """
    mode = str(values.get("s3.retry-mode") or "STANDARD").lower()
    config: dict[str, Any] = {
        "retries": {"max_attempts": int(values.get("s3.max-error-retries", 10)), "mode": mode}
    }
    if values.get("s3.max-connections"):
        config["max_pool_connections"] = int(values["s3.max-connections"])
    if values.get("s3.path-style-access"):
        config["s3"] = {"addressing_style": "path"}
    kwargs: dict[str, Any] = {
        "config_kwargs": config,
        "skip_instance_cache": True,  # one botocore client per S3FileSystemClient
        "use_listings_cache": False,  # listings must see other writers at once
    }
    if values.get("s3.endpoint"):
        kwargs["endpoint_url"] = values["s3.endpoint"]
    if values.get("s3.region"):
        kwargs["client_kwargs"] = {"region_name": values["s3.region"]}
    if values.get("s3.aws-access-key"):
        kwargs["key"] = values["s3.aws-access-key"]
    if values.get("s3.aws-secret-key"):
        kwargs["secret"] = values["s3.aws-secret-key"]
    return kwargs


def object_args(values: Mapping[str, Any]) -> dict[str, str]:
    """Arguments of every PUT and multipart upload: storage class and server-side encryption."""
    args: dict[str, str] = {}
    if values.get("s3.storage-class"):
        args["StorageClass"] = str(values["s3.storage-class"]).upper()
    sse = str(values.get("s3.sse.type") or "NONE")
    if sse == "S3":
        args["ServerSideEncryption"] = "AES256"
    elif sse == "KMS":
        args["ServerSideEncryption"] = "aws:kms"
        if values.get("s3.sse.kms-key-id"):
            args["SSEKMSKeyId"] = str(values["s3.sse.kms-key-id"])
    return args


def _split(native: str) -> tuple[str, str]:
    bucket, _, key = native.partition("/")
    return bucket, key


def _dir_prefix(key: str) -> str:
    return key.rstrip("/") + "/" if key else ""


def _mtime(value: object) -> float | None:
    return value.timestamp() if isinstance(value, _dt.datetime) else None


class _MultipartOutputStream:
    """Buffers up to one part; uploads parts as they fill; completes on close."""

    def __init__(self, client: S3FileSystemClient, native: str) -> None:
        self._client = client
        self._bucket, self._key = _split(native)
        self._part_size = client.part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._done:
            raise ValueError(f"write to a closed stream for s3://{self._bucket}/{self._key}")
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._upload_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        call = self._client._call
        if self._upload_id is None:
            response = call(
                "create_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                **self._client.object_args,
            )
            self._upload_id = str(response["UploadId"])
        number = len(self._parts) + 1
        response = call(
            "upload_part",
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def close(self) -> None:
        if self._done:
            return
        try:
            call = self._client._call
            if self._upload_id is None:
                call(
                    "put_object",
                    Bucket=self._bucket,
                    Key=self._key,
                    Body=bytes(self._buffer),
                    **self._client.object_args,
                )
            else:
                if self._buffer or not self._parts:
                    self._upload_part(bytes(self._buffer))
                call(
                    "complete_multipart_upload",
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buffer = bytearray()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(FileNotFoundError):  # NoSuchUpload: already gone
                self._client._call(
                    "abort_multipart_upload",
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=upload_id,
                )


class S3FileSystemClient(FileSystemClient):
    """A client over S3 through s3fs (see the module docstring for atomicity)."""

    scheme = "s3"
    supports_atomic_create = True
    supports_multipart_cleanup = True
    supports_ranged_reads = True

    def __init__(
        self,
        roots: Sequence[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
        part_size: int = 16 * 1024 * 1024,
        max_retries: int = 10,
        object_args: Mapping[str, str] | None = None,
    ) -> None:
        """Create a client.

        Args:
            roots: ``s3://bucket/prefix`` base directories.
            storage_options: Keyword arguments for ``s3fs.S3FileSystem`` (see :func:`s3fs_kwargs`).
            part_size: Multipart part size of streaming writes (at least 5 MiB).
            max_retries: Retries of a failing operation by this client.
            object_args: Arguments of every object written (storage class, server-side
                encryption; see :func:`object_args`).
        """
        for root in roots:
            if not root.startswith(_SCHEMES) or not root.split("://", 1)[1].strip("/"):
                raise InvalidArgumentError(
                    f"base directory {root!r} is not an s3://bucket/prefix URI"
                )
        super().__init__(roots, max_retries=max_retries)
        self.part_size = part_size
        #: Keys per listing request and per DeleteObjects request (S3's maximum is 1000).
        self.list_page_size = 1000
        self.delete_batch_size = _DELETE_BATCH
        self._storage_options = dict(storage_options or {})
        self.object_args = dict(object_args or {})
        self._fs_lock = threading.Lock()
        self._fs: Any = None

    @classmethod
    def from_properties(
        cls, properties: dict[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> S3FileSystemClient:
        """Build a client from ``etc/filesystem/NAME.properties`` (``s3.*`` keys)."""
        values = S3_SCHEMA.parse(properties, source)
        access, secret = (
            bool(values.get("s3.aws-access-key")),
            bool(values.get("s3.aws-secret-key")),
        )
        if access != secret:
            given, missing = (
                ("s3.aws-access-key", "s3.aws-secret-key")
                if access
                else ("s3.aws-secret-key", "s3.aws-access-key")
            )
            raise ConfigurationError(
                f"{source}: {given} is set but {missing} is not; give both, or neither to use "
                "the default AWS credential chain"
            )
        try:
            return cls(
                roots,
                storage_options=s3fs_kwargs(values),
                part_size=int(values["s3.upload.part-size"]),
                max_retries=int(values["s3.max-error-retries"]),
                object_args=object_args(values),
            )
        except InvalidArgumentError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None

    def __repr__(self) -> str:
        endpoint = self._storage_options.get("endpoint_url", "AWS")
        return f"{type(self).__name__}(roots={list(self.roots)!r}, endpoint={endpoint!r})"

    # ------------------------------------------------------------------ s3fs plumbing

    @property
    def fs(self) -> Any:
        """The ``s3fs.S3FileSystem`` (created on first use)."""
        if self._fs is None:
            with self._fs_lock:
                if self._fs is None:
                    import s3fs

                    fs = s3fs.S3FileSystem(**self._storage_options)
                    fs.retries = 1  # botocore and this client retry; s3fs's loop would multiply
                    self._fs = fs
        return self._fs

    def _call(self, method: str, **kwargs: Any) -> Any:
        """Call one botocore S3 method (through s3fs's event loop)."""
        return self.fs.call_s3(method, **kwargs)

    def close(self) -> None:
        """Drop the s3fs instance (its connections close with it)."""
        self._fs = None

    def _classify(self, exc: BaseException) -> BaseException:
        return classify_s3_error(exc)

    # ------------------------------------------------------------------ paths

    def _native(self, path: str) -> str:
        return path.split("://", 1)[1]

    def _uri(self, native: str) -> str:
        for root in self.roots:
            scheme, rest = root.split("://", 1)
            if native == rest or native.startswith(rest + "/"):
                return f"{scheme}://{native}"
        return f"s3://{native}"

    # ------------------------------------------------------------------ primitives

    def _open_write(self, native: str, sync: bool = True) -> OutputStream:
        return _MultipartOutputStream(self, native)

    def _write_exclusive(self, native: str, data: bytes) -> None:
        bucket, key = _split(native)
        self._call(
            "put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*", **self.object_args
        )

    def _write_replace(self, native: str, data: bytes) -> None:
        bucket, key = _split(native)
        self._call("put_object", Bucket=bucket, Key=key, Body=data, **self.object_args)

    def _read(self, native: str) -> bytes:
        return bytes(self.fs.cat_file(native))

    def _read_range(self, native: str, offset: int, length: int) -> bytes:
        try:
            return bytes(self.fs.cat_file(native, start=offset, end=offset + length))
        except OSError as exc:
            if s3_error_code(exc) != "InvalidRange":
                raise
            return b""  # offset at or past the end of the object

    def _info(self, native: str) -> FileInfo:
        bucket, key = _split(native)
        if key:
            try:
                head = self._call("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                pass
            else:
                return FileInfo(
                    path=self._uri(native),
                    size=int(head.get("ContentLength", 0)),
                    mtime=_mtime(head.get("LastModified")),
                )
            listing = self._call(
                "list_objects_v2", Bucket=bucket, Prefix=_dir_prefix(key), MaxKeys=1
            )
            if not listing.get("KeyCount") and not listing.get("Contents"):
                raise FileNotFoundError(f"no such key or prefix: s3://{native}")
        else:
            self._call("head_bucket", Bucket=bucket)
        return FileInfo(path=self._uri(native.rstrip("/")), size=0, mtime=None, is_dir=True)

    def _pages(self, bucket: str, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if self.list_page_size != 1000:
            kwargs["MaxKeys"] = self.list_page_size
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            page = self._call("list_objects_v2", **kwargs)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def _list(self, native: str) -> list[FileInfo]:
        bucket, key = _split(native)
        prefix = _dir_prefix(key)
        out: list[FileInfo] = []
        try:
            for page in self._pages(bucket, prefix, "/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"].rstrip("/")
                    out.append(FileInfo(self._uri(f"{bucket}/{name}"), 0, None, is_dir=True))
                for obj in page.get("Contents", []):
                    if obj["Key"] == prefix:
                        continue  # a "directory marker" object
                    out.append(self._object_info(bucket, obj))
        except FileNotFoundError:
            return []  # no such bucket: nothing under it
        return out

    def _object_info(self, bucket: str, obj: dict[str, Any]) -> FileInfo:
        """The FileInfo of one object of a ListObjectsV2 page."""
        return FileInfo(
            self._uri(f"{bucket}/{obj['Key']}"),
            int(obj.get("Size", 0)),
            _mtime(obj.get("LastModified")),
        )

    def walk(self, path: str) -> Iterator[FileInfo]:
        """Every file under ``path``, in key order, from a flat listing (one request per 1000)."""
        native = self._native(self.check_path(path))
        bucket, key = _split(native)

        def listing() -> list[FileInfo]:
            out: list[FileInfo] = []
            try:
                for page in self._pages(bucket, _dir_prefix(key), None):
                    for obj in page.get("Contents", []):
                        if obj["Key"].endswith("/"):
                            continue  # directory markers
                        out.append(self._object_info(bucket, obj))
            except FileNotFoundError:
                return []
            return out

        yield from self._retry("walk", path, listing)

    def _delete(self, native: str) -> None:
        bucket, key = _split(native)
        with contextlib.suppress(FileNotFoundError):
            self._call("delete_object", Bucket=bucket, Key=key)

    def _delete_recursive(self, native: str) -> None:
        bucket, key = _split(native)
        keys: list[str] = [key] if key else []
        try:
            for page in self._pages(bucket, _dir_prefix(key), None):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except FileNotFoundError:
            return
        for start in range(0, len(keys), self.delete_batch_size):
            batch = keys[start : start + self.delete_batch_size]
            response = self._call(
                "delete_objects",
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise OSError(
                    f"could not delete {len(errors)} keys, first s3://{bucket}/{first.get('Key')}: "
                    f"{first.get('Code')}: {first.get('Message')}"
                )

    def _abort_multipart_uploads(self, native: str, older_than: float | None) -> int:
        bucket, key = _split(native)
        cutoff = None if older_than is None else time.time() - older_than
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": _dir_prefix(key)}
        aborted = 0
        while True:
            page = self._call("list_multipart_uploads", **kwargs)
            for upload in page.get("Uploads", []):
                started = _mtime(upload.get("Initiated"))
                if cutoff is not None and started is not None and started > cutoff:
                    continue
                try:
                    self._call(
                        "abort_multipart_upload",
                        Bucket=bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    aborted += 1
                except FileNotFoundError:
                    continue  # completed or aborted meanwhile
            if not page.get("IsTruncated"):
                return aborted
            kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")
