"""The keys each filesystem client type accepts in ``etc/filesystem/NAME.properties``.

Kept apart from the clients so the keys can be validated (and documented) without importing
any backend SDK.
"""

from __future__ import annotations

from exchange_store.config import Key, Schema, parse_data_size

__all__ = [
    "FSSPEC_OPTION_PREFIX",
    "FSSPEC_SCHEMA",
    "FS_CLIENT_TYPE",
    "HDFS_SCHEMA",
    "LOCAL_SCHEMA",
    "S3_SCHEMA",
]

FS_CLIENT_TYPE = "fs.client.type"
FSSPEC_OPTION_PREFIX = "fsspec.option."

_TYPE_KEY = Key(FS_CLIENT_TYPE, "string", doc="local | s3 | hdfs | fsspec (or a registered type)")

LOCAL_SCHEMA = Schema("filesystem properties (fs.client.type=local)", [_TYPE_KEY])

S3_SCHEMA = Schema(
    "filesystem properties (fs.client.type=s3)",
    [
        _TYPE_KEY,
        Key(
            "s3.endpoint",
            "string",
            doc="S3 endpoint URL (MinIO, moto, ...); AWS's own when absent",
            aliases=("exchange.s3.endpoint",),
        ),
        Key("s3.region", "string", doc="AWS region", aliases=("exchange.s3.region",)),
        Key(
            "s3.aws-access-key",
            "string",
            doc="access key id; absent: the default AWS credential chain",
            aliases=("exchange.s3.aws-access-key",),
            secret=True,
        ),
        Key(
            "s3.aws-secret-key",
            "string",
            doc="secret access key (never logged)",
            aliases=("exchange.s3.aws-secret-key",),
            secret=True,
        ),
        Key(
            "s3.path-style-access",
            "bool",
            False,
            doc="path-style addressing (http://host/bucket/key), needed by MinIO and moto",
            aliases=("exchange.s3.path-style-access",),
        ),
        Key(
            "s3.upload.part-size",
            "size",
            parse_data_size("16MB"),
            minimum=parse_data_size("5MB"),
            maximum=parse_data_size("5GB"),
            doc="multipart upload part size of streaming writes",
            aliases=("exchange.s3.upload.part-size",),
        ),
        Key(
            "s3.max-error-retries",
            "int",
            10,
            minimum=0,
            maximum=100,
            doc="retries of a failed request (botocore and the client's own retries)",
            aliases=("exchange.s3.max-error-retries",),
        ),
        Key(
            "s3.retry-mode",
            "enum",
            "STANDARD",
            choices=("LEGACY", "STANDARD", "ADAPTIVE"),
            doc="botocore's retry mode (ADAPTIVE adds client-side rate limiting)",
            aliases=("exchange.s3.retry-mode",),
        ),
        Key(
            "s3.storage-class",
            "string",
            doc="storage class of written objects (STANDARD, INTELLIGENT_TIERING, ...)",
            aliases=("exchange.s3.storage-class",),
        ),
        Key(
            "s3.sse.type",
            "enum",
            "NONE",
            choices=("NONE", "S3", "KMS"),
            doc="server-side encryption of written objects: NONE, S3 (SSE-S3) or KMS (SSE-KMS)",
            aliases=("exchange.s3.sse.type",),
        ),
        Key(
            "s3.sse.kms-key-id",
            "string",
            doc="KMS key id of SSE-KMS (absent: the bucket's default key)",
            aliases=("exchange.s3.sse.kms-key-id",),
        ),
        Key(
            "s3.max-connections",
            "int",
            None,
            minimum=1,
            doc="connection pool size (default botocore's 10)",
            aliases=("exchange.s3.async-client-concurrency",),
        ),
    ],
)

HDFS_SCHEMA = Schema(
    "filesystem properties (fs.client.type=hdfs)",
    [
        _TYPE_KEY,
        Key(
            "hdfs.config.resources",
            "list",
            (),
            doc="comma-separated Hadoop XML files (core-site.xml, hdfs-site.xml)",
            aliases=("exchange.hdfs.config.resources",),
        ),
        Key(
            "hdfs.authentication.type",
            "enum",
            "NONE",
            choices=("NONE", "KERBEROS"),
            doc="NONE or KERBEROS",
        ),
        Key("hdfs.krb5.conf.path", "string", doc="krb5.conf (sets KRB5_CONFIG)"),
        Key("hdfs.krb5.keytab.path", "string", doc="keytab used to obtain a ticket (KERBEROS)"),
        Key("hdfs.krb5.principal", "string", doc="Kerberos principal (KERBEROS)"),
        Key("hdfs.krb5.ticket-cache-path", "string", doc="Kerberos ticket cache to use"),
        Key("hdfs.user", "string", doc="user name to act as (NONE authentication)"),
        Key("hdfs.replication", "int", 3, minimum=1, doc="replication of written files"),
        Key(
            "hdfs.block-size",
            "size",
            None,
            minimum=1,
            doc="block size of written files (default: the cluster's)",
            aliases=("exchange.hdfs.block-size",),
        ),
        Key(
            "fs.hdfs.impl.disable.cache",
            "bool",
            None,
            doc="openLooKeng's profiles: accepted; each client has its own connection anyway",
        ),
    ],
)

FSSPEC_SCHEMA = Schema(
    "filesystem properties (fs.client.type=fsspec)",
    [
        _TYPE_KEY,
        Key(
            "fsspec.protocol",
            "string",
            doc="fsspec protocol (gs, abfs, memory, ...); default: the scheme of the roots",
        ),
    ],
    prefixes=(FSSPEC_OPTION_PREFIX,),
)
