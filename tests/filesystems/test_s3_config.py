"""S3 properties -> s3fs kwargs, and the S3 error table (no network)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from exchange_store.errors import ConfigurationError
from exchange_store.filesystems._s3_errors import classify_s3_error, s3_error_code
from exchange_store.filesystems._schemas import S3_SCHEMA
from exchange_store.filesystems.base import is_transient
from exchange_store.filesystems.registry import load_filesystem
from exchange_store.filesystems.s3 import S3FileSystemClient, s3fs_kwargs

MiB = 1024 * 1024


def kwargs_of(props: dict[str, str]) -> dict[str, object]:
    return s3fs_kwargs(S3_SCHEMA.parse({"fs.client.type": "s3", **props}, "s3.properties"))


def test_defaults_use_the_credential_chain() -> None:
    kw = kwargs_of({})
    assert "key" not in kw and "secret" not in kw
    assert "endpoint_url" not in kw
    assert kw["config_kwargs"] == {"retries": {"max_attempts": 10, "mode": "standard"}}
    assert kw["skip_instance_cache"] is True
    assert kw["use_listings_cache"] is False


def test_all_keys() -> None:
    kw = kwargs_of(
        {
            "s3.endpoint": "http://minio:9000",
            "s3.region": "eu-west-3",
            "s3.aws-access-key": "AK",
            "s3.aws-secret-key": "SK",
            "s3.path-style-access": "true",
            "s3.max-error-retries": "4",
        }
    )
    assert kw["endpoint_url"] == "http://minio:9000"
    assert kw["client_kwargs"] == {"region_name": "eu-west-3"}
    assert (kw["key"], kw["secret"]) == ("AK", "SK")
    assert kw["config_kwargs"] == {
        "retries": {"max_attempts": 4, "mode": "standard"},
        "s3": {"addressing_style": "path"},
    }


def test_trino_style_aliases() -> None:
    kw = kwargs_of({"exchange.s3.endpoint": "http://x:1", "exchange.s3.region": "r"})
    assert kw["endpoint_url"] == "http://x:1"


def test_from_properties_types() -> None:
    client = load_filesystem(
        {"fs.client.type": "s3", "s3.upload.part-size": "64MB", "s3.max-error-retries": "3"},
        ["s3://bucket/prefix"],
    )
    assert isinstance(client, S3FileSystemClient)
    assert client.part_size == 64 * MiB
    assert client.max_retries == 3
    assert client.roots == ("s3://bucket/prefix",)


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"s3.upload.part-size": "1MB"}, "must be >= 5MB"),
        ({"s3.upload.part-size": "lots"}, "s3.upload.part-size"),
        ({"s3.max-error-retries": "-1"}, "s3.max-error-retries"),
        ({"s3.path-style-access": "yes"}, "s3.path-style-access"),
        ({"s3.endpont": "http://x"}, "did you mean 's3.endpoint'"),
    ],
)
def test_bad_values_name_file_and_key(props: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_filesystem(
            {"fs.client.type": "s3", **props}, ["s3://b/p"], source="etc/filesystem/s3.properties"
        )
    assert "etc/filesystem/s3.properties" in str(info.value)
    assert fragment in str(info.value)


def test_bad_roots() -> None:
    for root in ("/var/x", "s3://", "gs://b/x"):
        with pytest.raises(ConfigurationError, match=r"s3\.properties"):
            load_filesystem({"fs.client.type": "s3"}, [root], source="s3.properties")


def test_secret_never_in_repr_or_errors() -> None:
    client = load_filesystem(
        {"fs.client.type": "s3", "s3.aws-access-key": "AK", "s3.aws-secret-key": "hunter2-secret"},
        ["s3://b/p"],
    )
    assert "hunter2-secret" not in repr(client)
    with pytest.raises(ConfigurationError) as info:  # a secret without its access key
        load_filesystem(
            {"fs.client.type": "s3", "s3.aws-secret-key": "hunter2-secret"}, ["s3://b/p"]
        )
    assert "hunter2-secret" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_filesystem(
            {"fs.client.type": "s3", "s3.aws-secret-key": "hunter2-secret", "s3.nope": "1"},
            ["s3://b/p"],
        )
    assert "hunter2-secret" not in str(info.value)


def client_error(code: str, status: int, message: str = "msg") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected", "transient"),
    [
        ("NoSuchKey", 404, FileNotFoundError, False),
        ("404", 404, FileNotFoundError, False),
        ("NoSuchBucket", 404, FileNotFoundError, False),
        ("AccessDenied", 403, PermissionError, False),
        ("PreconditionFailed", 412, FileExistsError, False),
        ("ConditionalRequestConflict", 409, ConnectionError, True),
        ("SlowDown", 503, ConnectionError, True),
        ("InternalError", 500, ConnectionError, True),
        ("RequestTimeout", 400, TimeoutError, True),
        ("WeirdNewCode", 503, ConnectionError, True),
    ],
)
def test_error_table(code: str, status: int, expected: type, transient: bool) -> None:
    raw = client_error(code, status)
    mapped = classify_s3_error(raw)
    assert type(mapped) is expected
    assert code in str(mapped)
    assert mapped.__cause__ is raw
    assert is_transient(mapped) is transient
    # s3fs raises builtins with the ClientError as cause: the code is still found.
    try:
        raise OSError(5, "wrapped by s3fs") from raw
    except OSError as wrapped:
        assert type(classify_s3_error(wrapped)) is expected
        assert s3_error_code(wrapped) == code


def test_unknown_errors_are_left_alone() -> None:
    raw = client_error("InvalidArgument", 400)
    assert classify_s3_error(raw) is raw
    plain = ValueError("x")
    assert classify_s3_error(plain) is plain


def test_network_errors_are_transient() -> None:
    mapped = classify_s3_error(EndpointConnectionError(endpoint_url="http://x"))
    assert isinstance(mapped, ConnectionError)
    assert is_transient(mapped)
