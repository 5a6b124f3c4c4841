"""Shared fixtures: a real S3 (moto server on loopback) for every area's S3 tests.

* ``moto_server`` (session): the endpoint URL of a moto S3 server on 127.0.0.1, free port.
* ``s3_bucket`` (function): a fresh, empty bucket name on that server.
* ``s3_properties`` (function): ``etc/filesystem/NAME.properties`` values pointing at the server
  (dummy credentials, path-style), for ``load_filesystem`` or ``from_properties(filesystems=)``.
* ``s3_root`` (function): ``s3://<s3_bucket>/root``, a base directory for a client.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

_bucket_counter = itertools.count()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start a moto S3 server on a free loopback port; yields its endpoint URL."""
    server_module = pytest.importorskip("moto.server")
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials and region in the environment (for SDKs using the default chain)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def s3_bucket(moto_server: str, s3_credentials: None) -> Iterator[str]:
    """A fresh, empty bucket on the moto server; its name (valid: lowercase, 3-63 chars)."""
    boto3 = pytest.importorskip("boto3")
    name = f"test-{next(_bucket_counter)}-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        _empty_and_delete(s3, name)
        s3.close()


def _empty_and_delete(client: Any, bucket: str) -> None:
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)
    except Exception:  # best-effort cleanup; the bucket name is never reused
        pass


@pytest.fixture
def s3_properties(moto_server: str, s3_credentials: None) -> dict[str, str]:
    """``etc/filesystem/NAME.properties`` values for the moto server."""
    return {
        "fs.client.type": "s3",
        "s3.endpoint": moto_server,
        "s3.region": "us-east-1",
        "s3.aws-access-key": "testing",
        "s3.aws-secret-key": "testing",
        "s3.path-style-access": "true",
        "s3.upload.part-size": "5MB",
        "s3.max-error-retries": "2",
    }


@pytest.fixture
def s3_root(s3_bucket: str) -> str:
    """A base directory ``s3://<bucket>/root`` in a fresh bucket."""
    return f"s3://{s3_bucket}/root"
