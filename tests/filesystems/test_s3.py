from __future__ import annotations

from typing import Any

import boto3
import pytest

from exchange_store.filesystems.base import FileSystemClient
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.filesystems.s3 import S3FileSystemClient
from exchange_store.testing.filesystem import FileSystemClientTests

pytestmark = pytest.mark.s3


def _boto(moto_server: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.removeprefix("s3://").partition("/")
    return bucket, key


class TestS3Client(FileSystemClientTests):
    large_size = 12 * 1024 * 1024  # three 5 MiB parts (the fixture's part size)

    @pytest.fixture
    def client(self, s3_properties: dict[str, str], s3_root: str) -> FileSystemClient:
        return load_filesystem(s3_properties, [s3_root], source="s3.properties")

    @pytest.fixture(autouse=True)
    def _boto_client(self, moto_server: str) -> None:
        self._s3 = _boto(moto_server)

    def raw_read(self, client: FileSystemClient, path: str) -> bytes:
        bucket, key = _split(path)
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self._s3.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(path) from exc

    def raw_write(self, client: FileSystemClient, path: str, data: bytes) -> None:
        bucket, key = _split(path)
        self._s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_multipart_stream_invisible_and_aborted(
    s3_properties: dict[str, str], s3_root: str, moto_server: str
) -> None:
    client = load_filesystem(s3_properties, [s3_root])
    s3 = _boto(moto_server)
    bucket, _ = _split(s3_root)
    path = f"{s3_root}/big.bin"
    stream = client.create(path)
    stream.write(b"x" * (6 * 1024 * 1024))  # more than one 5 MiB part: upload started
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["root/big.bin"]
    assert not client.exists(path)
    stream.abort()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not client.exists(path)


def test_abort_multipart_uploads_of_dead_writers(
    s3_properties: dict[str, str], s3_root: str, moto_server: str
) -> None:
    client = load_filesystem(s3_properties, [s3_root])
    s3 = _boto(moto_server)
    bucket, _ = _split(s3_root)
    s3.create_multipart_upload(Bucket=bucket, Key="root/q/dead.bin")
    s3.create_multipart_upload(Bucket=bucket, Key="elsewhere/other.bin")
    # moto reports every upload as initiated in 2010: older than one hour, younger than a century.
    assert client.abort_multipart_uploads(f"{s3_root}/q", older_than=100 * 365 * 86400) == 0
    assert client.abort_multipart_uploads(s3_root, older_than=3600) == 1
    assert client.abort_multipart_uploads(s3_root) == 0
    left = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == ["elsewhere/other.bin"]


def test_delete_recursive_many_keys(s3_properties: dict[str, str], s3_root: str) -> None:
    client = load_filesystem(s3_properties, [s3_root])
    assert isinstance(client, S3FileSystemClient)
    client.list_page_size = 7  # exercise pagination and batching on a few keys
    client.delete_batch_size = 5
    for i in range(23):
        client.write_file(f"{s3_root}/t/{i:04d}", b"x")
    client.write_file(f"{s3_root}/t/sub/a", b"x")
    client.write_file(f"{s3_root}/t2", b"kept")
    assert sum(1 for _ in client.walk(f"{s3_root}/t")) == 24
    assert len(client.list(f"{s3_root}/t")) == 24  # 23 files and one directory
    client.delete_recursive(f"{s3_root}/t")
    assert [e.path for e in client.walk(s3_root)] == [f"{s3_root}/t2"]


def test_directory_marker_objects_are_not_listed(
    s3_properties: dict[str, str], s3_root: str, moto_server: str
) -> None:
    client = load_filesystem(s3_properties, [s3_root])
    bucket, key = _split(s3_root)
    s3 = _boto(moto_server)
    s3.put_object(Bucket=bucket, Key=f"{key}/d/", Body=b"")
    s3.put_object(Bucket=bucket, Key=f"{key}/d/f", Body=b"1")
    assert [(e.name, e.is_dir) for e in client.list(s3_root)] == [("d", True)]
    assert [e.name for e in client.list(f"{s3_root}/d")] == ["f"]
    assert [e.name for e in client.walk(s3_root)] == ["f"]
    assert client.info(f"{s3_root}/d").is_dir


def test_missing_bucket_lists_empty_and_reads_name_uri(
    s3_properties: dict[str, str], moto_server: str
) -> None:
    client = load_filesystem(s3_properties, ["s3://no-such-bucket-xyz/p"])
    assert client.list("s3://no-such-bucket-xyz/p") == []
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket-xyz/p/f"):
        client.read_file("s3://no-such-bucket-xyz/p/f")


def test_client_is_s3_and_repr_hides_secret(s3_properties: dict[str, str], s3_root: str) -> None:
    props = dict(s3_properties, **{"s3.aws-secret-key": "very-secret-value"})
    client = load_filesystem(props, [s3_root])
    assert isinstance(client, S3FileSystemClient)
    assert client.part_size == 5 * 1024 * 1024
    assert client.max_retries == 2
    assert "very-secret-value" not in repr(client)
    assert "very-secret-value" not in str(vars(client).get("roots"))


class FaultyS3Client(S3FileSystemClient):
    """Injects S3 errors into real requests: ``faults[method]`` is a list of (when, error)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults: dict[str, list[tuple[str, BaseException]]] = {}
        self.calls: dict[str, int] = {}

    def _call(self, method: str, **kwargs: Any) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        pending = self.faults.get(method)
        if pending:
            when, error = pending.pop(0)
            if when == "before":
                raise error
            super()._call(method, **kwargs)
            raise error  # the request landed, its response was lost
        return super()._call(method, **kwargs)


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "X",
    )


@pytest.fixture
def faulty(s3_properties: dict[str, str], s3_root: str) -> FaultyS3Client:
    import tenacity

    client = FaultyS3Client.from_properties(s3_properties, [s3_root])
    assert isinstance(client, FaultyS3Client)
    client.retry_wait = tenacity.wait_none()
    return client


def test_throttling_is_retried(faulty: FaultyS3Client, s3_root: str) -> None:
    faulty.faults["put_object"] = [("before", _client_error("SlowDown", 503))] * 2
    faulty.write_file(f"{s3_root}/f", b"data")
    assert faulty.calls["put_object"] == 3
    assert faulty.read_file(f"{s3_root}/f") == b"data"


def test_persistent_failure_names_uri(faulty: FaultyS3Client, s3_root: str) -> None:
    from exchange_store.errors import TransientStorageError

    faulty.faults["put_object"] = [("before", _client_error("InternalError", 500))] * 10
    with pytest.raises(TransientStorageError, match=f"{s3_root}/f") as info:
        faulty.write_file(f"{s3_root}/f", b"data")
    assert faulty.calls["put_object"] == faulty.max_retries + 1 == 3
    assert "InternalError" in str(info.value)


def test_access_denied_is_not_retried(faulty: FaultyS3Client, s3_root: str) -> None:
    from exchange_store.errors import StorageError

    faulty.faults["head_object"] = [("before", _client_error("AccessDenied", 403))]
    with pytest.raises(
        StorageError, match=f"PermissionError.*{s3_root}/f|{s3_root}/f.*PermissionError"
    ):
        faulty.info(f"{s3_root}/f")
    assert faulty.calls["head_object"] == 1


def test_exclusive_create_with_lost_response_succeeds(faulty: FaultyS3Client, s3_root: str) -> None:
    faulty.faults["put_object"] = [("after", ConnectionResetError("lost"))]
    faulty.write_exclusive(f"{s3_root}/marker", b"mine")
    assert faulty.read_file(f"{s3_root}/marker") == b"mine"


def test_exclusive_create_conflict_then_retry(faulty: FaultyS3Client, s3_root: str) -> None:
    faulty.faults["put_object"] = [("before", _client_error("ConditionalRequestConflict", 409))]
    faulty.write_exclusive(f"{s3_root}/marker", b"mine")
    assert faulty.calls["put_object"] == 2
    assert faulty.read_file(f"{s3_root}/marker") == b"mine"


def test_exclusive_create_lost_response_but_other_writer_won(
    faulty: FaultyS3Client, s3_root: str
) -> None:
    from exchange_store.errors import CommitConflictError

    faulty.write_file(f"{s3_root}/marker", b"theirs")
    faulty.faults["put_object"] = [("before", ConnectionResetError("lost"))]
    with pytest.raises(CommitConflictError, match=f"{s3_root}/marker"):
        faulty.write_exclusive(f"{s3_root}/marker", b"mine")
    assert faulty.read_file(f"{s3_root}/marker") == b"theirs"


def test_failed_complete_aborts_upload(
    faulty: FaultyS3Client, s3_root: str, moto_server: str
) -> None:
    from exchange_store.errors import StorageError

    faulty.faults["complete_multipart_upload"] = [("before", _client_error("AccessDenied", 403))]
    stream = faulty.create(f"{s3_root}/big")
    stream.write(b"y" * (6 * 1024 * 1024))
    with pytest.raises(StorageError, match=f"{s3_root}/big"):
        stream.close()
    bucket, _ = _split(s3_root)
    assert _boto(moto_server).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not faulty.exists(f"{s3_root}/big")
