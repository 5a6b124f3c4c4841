"""The exchange's own record on storage: what ``open_exchange`` needs to take it over.

``{base0}/{query_id}/{exchange_id}/_exchange`` holds the exchange's shape (output partition
count, order, codec, encryption) and, once ``all_required_sinks_finished()`` was called, the
selected attempt of every task partition. It is sealed like a manifest (checksummed, and
encrypted with the query key when encryption is on; associated data ``xs-exchange/q/e``), and
replaced atomically. A changed file, or one read with another key, is an
:class:`~exchange_store.errors.IntegrityError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from exchange_store.errors import IntegrityError
from exchange_store.filesystems.base import FileSystemClient
from exchange_store.format import seal, unseal

__all__ = ["ExchangeDescriptor", "descriptor_context", "read_descriptor", "write_descriptor"]

_VERSION = 1


def descriptor_context(query_id: str, exchange_id: str) -> bytes:
    """Associated data binding a descriptor to its exchange."""
    return f"xs-exchange/{query_id}/{exchange_id}".encode()


@dataclass(frozen=True, slots=True)
class ExchangeDescriptor:
    """The shape of an exchange and its recorded selections.

    Attributes:
        output_partition_count: Partitions of the exchange.
        preserve_order: Whether records keep their write order.
        codec: Block compression.
        compression_level: ZSTD level or None.
        encrypted: Whether data is encrypted.
        selected: Task partition to its selected attempt (recorded when all sinks finished).
    """

    output_partition_count: int
    preserve_order: bool
    codec: str
    compression_level: int | None
    encrypted: bool
    selected: dict[int, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The JSON payload (before sealing)."""
        return json.dumps(
            {
                "version": _VERSION,
                "output_partition_count": self.output_partition_count,
                "preserve_order": self.preserve_order,
                "codec": self.codec,
                "compression_level": self.compression_level,
                "encrypted": self.encrypted,
                "selected": {str(tp): a for tp, a in sorted(self.selected.items())},
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, payload: bytes, path: str) -> ExchangeDescriptor:
        """Parse a payload; IntegrityError naming ``path`` when it is not a descriptor."""
        try:
            raw = json.loads(payload)
            if raw["version"] != _VERSION:
                raise ValueError(f"version {raw['version']}")
            level = raw["compression_level"]
            return cls(
                output_partition_count=int(raw["output_partition_count"]),
                preserve_order=bool(raw["preserve_order"]),
                codec=str(raw["codec"]),
                compression_level=None if level is None else int(level),
                encrypted=bool(raw["encrypted"]),
                selected={int(tp): int(a) for tp, a in raw["selected"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"{path}: not an exchange descriptor ({exc})") from None


def write_descriptor(
    client: FileSystemClient,
    path: str,
    descriptor: ExchangeDescriptor,
    key: bytes | None,
    context: bytes,
) -> None:
    """Seal and write ``descriptor`` to ``path``, replacing it atomically."""
    client.write_file(path, seal(descriptor.encode(), key, context))


def read_descriptor(
    client: FileSystemClient, path: str, key: bytes | None, context: bytes
) -> ExchangeDescriptor:
    """Read and check the descriptor at ``path``.

    Raises:
        StorageFileNotFoundError: there is none.
        IntegrityError: it fails its checks (changed, truncated, or another key).
    """
    sealed = client.read_file(path)
    try:
        payload = unseal(sealed, key, context)
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from None
    return ExchangeDescriptor.decode(payload, path)
