"""Shared fixtures: real object-store servers on loopback (moto S3, Azurite, GCS emulator).

* ``moto_server`` (session): the endpoint URL of a moto S3 server on 127.0.0.1, free port.
* ``s3_bucket`` (function): a fresh, empty bucket name on that server.
* ``s3_properties`` (function): ``etc/filesystem/NAME.properties`` values pointing at the server
  (dummy credentials, path-style), for ``load_filesystem`` or ``from_properties(filesystems=)``.
* ``s3_root`` (function): ``s3://<s3_bucket>/root``, a base directory for a client.
* ``azurite`` (session): Azurite's blob service (npm package ``azurite``, installed by
  ``make test`` under ``.tools/``) on a free port; yields its connection string. Skips, saying
  why, when node or the package is missing.
* ``azure_container`` (function): a fresh container on it.
* ``gcs_emulator`` (session): ``gcp-storage-emulator`` (PyPI) on a free port; sets
  ``STORAGE_EMULATOR_HOST`` for gcsfs and yields the endpoint.
* ``gcs_bucket`` (function): a fresh bucket on it.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# gcsfs probes a bucket's type over gRPC (zonal/HNS buckets) unless told not to; an emulator
# has no gRPC endpoint, and every probe would wait a minute. Read when gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

_ROOT = Path(__file__).resolve().parents[1]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every Azurite install).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Azurite's blob service on a free loopback port; yields a connection string."""
    pytest.importorskip("adlfs")
    binary = os.environ.get("AZURITE_BLOB") or str(_ROOT / ".tools/node_modules/.bin/azurite-blob")
    if not shutil.which("node"):
        pytest.skip("Azure tests need node (Azurite is an npm package); node is not installed")
    if not os.path.exists(binary):
        pytest.skip(f"Azure tests need Azurite: {binary} is missing (make test installs it)")
    port = _free_port()
    data = tempfile.mkdtemp(prefix="azurite-")
    log = Path(data) / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(binary, "--blobHost", "127.0.0.1", "--blobPort", str(port)),
                *("--location", data, "--skipApiVersionCheck", "--loose", "--disableTelemetry"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, proc, "Azurite", log)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
    finally:
        _stop(proc)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def azure_container(azurite: str) -> str:
    """A fresh container on Azurite; its name."""
    from azure.storage.blob import BlobServiceClient

    name = f"test-{next(_bucket_counter)}-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite).create_container(name)
    return name


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator on a free loopback port (in memory); yields its endpoint URL."""
    pytest.importorskip("gcsfs")
    pytest.importorskip("gcp_storage_emulator")
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="gcs-emulator-")) / "emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gcp_storage_emulator", "start"),
                *("--host", "127.0.0.1", "--port", str(port), "--in-memory"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_for_port(port, proc, "gcp-storage-emulator", log)
        os.environ["STORAGE_EMULATOR_HOST"] = endpoint
        yield endpoint
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        _stop(proc)


@pytest.fixture
def gcs_bucket(gcs_emulator: str) -> str:
    """A fresh bucket on the GCS emulator; its name."""
    import fsspec

    name = f"test-{next(_bucket_counter)}-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("gs", token="anon", project="test", skip_instance_cache=True)
    fs.mkdir(name)
    return name
