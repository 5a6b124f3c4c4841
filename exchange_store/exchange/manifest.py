"""The commit manifest of one sink attempt: the only thing readers trust.

An attempt is committed exactly when ``{attempt}/_manifest`` exists. The manifest names the
run whose files it commits (``{attempt}/{run}/``) and lists that run's data files in order
with their ids, lengths and block index (each block's output partition, offset, length,
record count), and is sealed with
:func:`exchange_store.format.seal`: checksummed, and encrypted and authenticated with the
per-query key when encryption is on, with associated data naming the attempt
(``xs-manifest/q/e/tp/a``). A changed, truncated, moved or foreign manifest is an
:class:`~exchange_store.errors.IntegrityError`.

Payload (before sealing)::

    b"XSM1" | u32 header length | header JSON (utf-8) | per file: u32 length | FileSummary.encode()

The header (version 2) holds the ids (run id included), the output partition count, the codec,
and per file its name and index. Integers are little-endian. The sealed bytes travel unchanged
in the :class:`~exchange_store.exchange.handles.ExchangeSinkReceipt`, so the coordinator
checks a receipt exactly as it would check the stored manifest.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.exchange.handles import ExchangeSinkReceipt
from exchange_store.exchange.paths import check_run_id, manifest_context
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.format import FileSummary, seal, unseal

__all__ = [
    "MANIFEST_MAGIC",
    "Manifest",
    "ManifestFile",
    "open_manifest",
    "open_receipt",
    "read_manifest",
    "write_manifest",
]

_VERSION = 2

MANIFEST_MAGIC = b"XSM1"
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One committed data file of an attempt.

    Attributes:
        name: File name inside the attempt directory (``data-0.xsf``).
        index: ``n`` of ``data-{n}.xsf`` (part of the file's associated data).
        summary: File id, length and block index.
    """

    name: str
    index: int
    summary: FileSummary


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one committed attempt wrote.

    Attributes:
        query_id: The query.
        exchange_id: The exchange.
        task_partition_id: The task partition.
        attempt_id: The attempt.
        run_id: The run whose data files are committed (``{attempt}/{run}/``).
        output_partition_count: Output partitions of the exchange.
        codec: Compression codec name.
        files: The data files, in write order.
    """

    query_id: str
    exchange_id: str
    task_partition_id: int
    attempt_id: int
    run_id: str
    output_partition_count: int
    codec: str
    files: tuple[ManifestFile, ...]

    def partition_sizes(self) -> dict[int, int]:
        """Stored bytes per output partition that has data."""
        sizes: dict[int, int] = {}
        for f in self.files:
            for b in f.summary.blocks:
                sizes[b.partition] = sizes.get(b.partition, 0) + b.length
        return sizes

    def receipt(self, sealed: bytes) -> ExchangeSinkReceipt:
        """The receipt of this commit; ``sealed`` is the manifest as stored."""
        return ExchangeSinkReceipt(
            query_id=self.query_id,
            exchange_id=self.exchange_id,
            task_partition_id=self.task_partition_id,
            attempt_id=self.attempt_id,
            run_id=self.run_id,
            partition_sizes=self.partition_sizes(),
            records=self.records,
            file_count=len(self.files),
            manifest=sealed,
        )

    @property
    def records(self) -> int:
        """Records written by the attempt."""
        return sum(b.records for f in self.files for b in f.summary.blocks)

    @property
    def raw_bytes(self) -> int:
        """Raw (uncompressed) record bytes written, framing included."""
        return sum(b.raw_size for f in self.files for b in f.summary.blocks)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the data files on storage."""
        return sum(f.summary.length for f in self.files)

    def encode(self) -> bytes:
        """The unsealed payload."""
        header: dict[str, Any] = {
            "version": _VERSION,
            "query_id": self.query_id,
            "exchange_id": self.exchange_id,
            "task_partition_id": self.task_partition_id,
            "attempt_id": self.attempt_id,
            "run_id": self.run_id,
            "output_partition_count": self.output_partition_count,
            "codec": self.codec,
            "files": [{"name": f.name, "index": f.index} for f in self.files],
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        parts = [MANIFEST_MAGIC, _U32.pack(len(head)), head]
        for f in self.files:
            blob = f.summary.encode()
            parts += [_U32.pack(len(blob)), blob]
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes, path: str) -> Manifest:
        """Parse an unsealed payload.

        Raises:
            IntegrityError: the payload is not a manifest; names ``path``.
        """
        try:
            if payload[:4] != MANIFEST_MAGIC:
                raise ValueError("bad magic")
            (head_len,) = _U32.unpack_from(payload, 4)
            pos = 8 + head_len
            header = json.loads(payload[8:pos])
            if header.get("version") != _VERSION:
                raise ValueError(f"unknown manifest version {header.get('version')!r}")
            files = []
            for entry in header["files"]:
                (blob_len,) = _U32.unpack_from(payload, pos)
                blob = payload[pos + 4 : pos + 4 + blob_len]
                if len(blob) != blob_len:
                    raise ValueError("truncated file summary")
                pos += 4 + blob_len
                files.append(
                    ManifestFile(str(entry["name"]), int(entry["index"]), FileSummary.decode(blob))
                )
            if pos != len(payload):
                raise ValueError("trailing bytes")
            return cls(
                query_id=str(header["query_id"]),
                exchange_id=str(header["exchange_id"]),
                task_partition_id=int(header["task_partition_id"]),
                attempt_id=int(header["attempt_id"]),
                run_id=check_run_id(header["run_id"]),
                output_partition_count=int(header["output_partition_count"]),
                codec=str(header["codec"]),
                files=tuple(files),
            )
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: corrupt manifest: {exc}") from None
        except (ValueError, KeyError, TypeError, struct.error, InvalidArgumentError) as exc:
            raise IntegrityError(f"{path}: corrupt manifest: {exc}") from None


def write_manifest(
    client: FileSystemClient, path: str, manifest: Manifest, key: bytes | None, context: bytes
) -> bytes:
    """Seal ``manifest`` and publish it at ``path`` with an exclusive create (the commit).

    Returns:
        The sealed bytes (what the receipt carries).

    Raises:
        CommitConflictError: a manifest is already at ``path``.
        StorageError: the write failed (the manifest may or may not have landed).
    """
    sealed = seal(manifest.encode(), key, context)
    client.write_exclusive(path, sealed)
    return sealed


def open_manifest(sealed: bytes, key: bytes | None, context: bytes, path: str) -> Manifest:
    """Unseal and parse a manifest read from ``path`` (or carried by a receipt).

    Raises:
        IntegrityError: the manifest was changed, truncated, moved or sealed with another key.
    """
    try:
        payload = unseal(sealed, key, context)
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from None
    return Manifest.decode(payload, path)


def open_receipt(receipt: ExchangeSinkReceipt, key: bytes | None, where: str) -> Manifest:
    """The manifest a receipt carries, checked as the stored one would be, plus its run.

    Raises:
        IntegrityError: the sealed manifest was changed, belongs to another attempt, or
            commits another run than the receipt names.
    """
    context = manifest_context(
        receipt.query_id, receipt.exchange_id, receipt.task_partition_id, receipt.attempt_id
    )
    manifest = open_manifest(receipt.manifest, key, context, where)
    if manifest.run_id != receipt.run_id:
        raise IntegrityError(
            f"{where}: names run {receipt.run_id} but its manifest commits run {manifest.run_id}"
        )
    return manifest


def read_manifest(
    client: FileSystemClient, path: str, key: bytes | None, context: bytes
) -> tuple[Manifest, bytes]:
    """Read, unseal and parse the manifest at ``path``; also return its sealed bytes.

    Raises:
        StorageFileNotFoundError: no manifest (the attempt did not commit).
        IntegrityError: the manifest was changed, truncated, moved or sealed with another key.
    """
    sealed = client.read_file(path)
    return open_manifest(sealed, key, context, path), sealed
