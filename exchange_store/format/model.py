"""Value objects of the record-file format: options, block references and file summaries."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from exchange_store.codecs.base import Codec
from exchange_store.codecs.lz4 import Lz4Codec
from exchange_store.crypto.aes import check_key
from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.format.structs import (
    CRC,
    FILE_ID_SIZE,
    crc,
    decode_varint,
    encode_varint,
)

__all__ = ["MAX_BLOCK_SIZE", "BlockRef", "FileSummary", "FormatOptions"]

MAX_BLOCK_SIZE = 1 << 30

_SUMMARY_MAGIC = b"XSFS"
_SUMMARY_VERSION = 1
_SUMMARY_HEAD = struct.Struct("<4sBBH16s")


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(
            f"invalid {what} {value!r}: must be an integer in [{low}, {high}]"
        )
    return value


@dataclass(frozen=True, slots=True)
class FormatOptions:
    """How record files are encoded (writers) and what readers require.

    Attributes:
        codec: Block compression; blocks that do not shrink are stored raw.
        block_size: Target raw size of a block in bytes (records are grouped up to it by
            :class:`~exchange_store.format.RecordStreamWriter`; a larger record makes a block
            of its own). 1 to 1 GiB; default 1 MiB.
        key: 32-byte AES-256 key, or None for no encryption. Readers given a key refuse
            unencrypted files (no downgrade); readers without one refuse encrypted files.
            Never written anywhere and not shown by ``repr``.
        workers: Threads that encode blocks (writers) and decode them ahead (readers) when
            blocks are compressed; 0 does all work in the calling thread. See :attr:`threads`.
        max_pending_blocks: Blocks handed to the pool and not yet written (back-pressure: the
            writer waits for the oldest one beyond this).
        min_saving: A compressed block is kept only when it is at least this fraction smaller
            than its raw bytes (else the block is stored raw, as Arrow IPC's
            ``min_space_savings``); 0 keeps any block that shrinks at all.
    """

    codec: Codec = field(default_factory=Lz4Codec)
    block_size: int = 1 << 20
    key: bytes | None = field(default=None, repr=False)
    workers: int = 2
    max_pending_blocks: int = 8
    min_saving: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.codec, Codec):
            raise InvalidArgumentError(
                f"invalid codec {self.codec!r}: must be a Codec instance (see get_codec)"
            )
        _check_int(self.block_size, "block_size", 1, MAX_BLOCK_SIZE)
        _check_int(self.workers, "workers", 0, 64)
        _check_int(self.max_pending_blocks, "max_pending_blocks", 1, 4096)
        m = self.min_saving
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0.0 <= m < 1.0:
            raise InvalidArgumentError(f"invalid min_saving {m!r}: must be a number in [0, 1)")
        object.__setattr__(self, "key", check_key(self.key, "encryption key"))

    @property
    def threads(self) -> int:
        """Threads worth using: ``workers`` when the codec compresses, else 0.

        lz4, zstandard and crc32c release the GIL, so compressing blocks on threads uses more
        cores. Without compression there is nothing to gain: AES-GCM in ``cryptography`` holds
        the GIL, and a CRC alone costs less than handing a block to a thread.
        """
        return 0 if self.codec.is_identity else self.workers

    @property
    def encrypted(self) -> bool:
        """Whether a key is set."""
        return self.key is not None


@dataclass(frozen=True, slots=True)
class BlockRef:
    """Where one block sits in its file and what it holds.

    Attributes:
        index: Position of the block in the file (0, 1, ...), bound into its checks.
        partition: Output partition of every record in the block.
        offset: Byte offset of the block in the file.
        length: Stored length of the block (header, payload and checksum).
        records: Number of records.
        raw_size: Size of the uncompressed record section (lengths table plus data).
    """

    index: int
    partition: int
    offset: int
    length: int
    records: int
    raw_size: int

    @property
    def end(self) -> int:
        """Offset just past the block."""
        return self.offset + self.length


def _zigzag(v: int) -> int:
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def _unzigzag(v: int) -> int:
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


def encode_blocks(blocks: Sequence[BlockRef], out: bytearray) -> None:
    """Append the compact varint encoding of ``blocks`` (count, then delta-coded entries)."""
    encode_varint(len(blocks), out)
    prev_index = -1
    prev_end = 0
    for b in blocks:
        encode_varint(_zigzag(b.index - prev_index - 1), out)
        encode_varint(_zigzag(b.offset - prev_end), out)
        encode_varint(b.length, out)
        encode_varint(b.partition, out)
        encode_varint(b.records, out)
        encode_varint(b.raw_size, out)
        prev_index = b.index
        prev_end = b.offset + b.length


def decode_blocks(
    data: bytes | memoryview, pos: int, what: str
) -> tuple[tuple[BlockRef, ...], int]:
    """Inverse of :func:`encode_blocks`; returns (blocks, next position).

    Raises:
        IntegrityError: the encoding is cut short or a value is out of range.
    """
    count, pos = decode_varint(data, pos, what)
    if count > len(data):  # every entry takes at least 6 bytes
        raise IntegrityError(f"{what}: block count {count} exceeds the data")
    out = []
    prev_index = -1
    prev_end = 0
    for _ in range(count):
        d_index, pos = decode_varint(data, pos, what)
        d_offset, pos = decode_varint(data, pos, what)
        length, pos = decode_varint(data, pos, what)
        partition, pos = decode_varint(data, pos, what)
        records, pos = decode_varint(data, pos, what)
        raw_size, pos = decode_varint(data, pos, what)
        index = prev_index + 1 + _unzigzag(d_index)
        offset = prev_end + _unzigzag(d_offset)
        if index < 0 or offset < 0 or index > 0xFFFFFFFF or partition > 0xFFFFFFFF:
            raise IntegrityError(f"{what}: block entry out of range")
        out.append(BlockRef(index, partition, offset, length, records, raw_size))
        prev_index = index
        prev_end = offset + length
    return tuple(out), pos


@dataclass(frozen=True, slots=True)
class FileSummary:
    """What a finished record file holds: returned by the writers, kept in manifests.

    Attributes:
        file_id: The file's random 16-byte id (bound into every block's checks).
        length: Total length of the file in bytes.
        blocks: Every block, in file order.
    """

    file_id: bytes
    length: int
    blocks: tuple[BlockRef, ...]

    @property
    def records(self) -> int:
        """Total number of records."""
        return sum(b.records for b in self.blocks)

    @property
    def raw_size(self) -> int:
        """Total raw (uncompressed, framed) size of the blocks."""
        return sum(b.raw_size for b in self.blocks)

    def partition_blocks(self, partition: int) -> tuple[BlockRef, ...]:
        """The blocks of one output partition, in file order (O(blocks); see by_partition)."""
        return tuple(b for b in self.blocks if b.partition == partition)

    def by_partition(self) -> dict[int, tuple[BlockRef, ...]]:
        """Every partition's blocks in file order, in one pass."""
        groups: dict[int, list[BlockRef]] = {}
        for b in self.blocks:
            groups.setdefault(b.partition, []).append(b)
        return {p: tuple(refs) for p, refs in groups.items()}

    def encode(self) -> bytes:
        """Compact, checksummed binary form (varints, CRC32C); see :meth:`decode`."""
        out = bytearray(_SUMMARY_HEAD.pack(_SUMMARY_MAGIC, _SUMMARY_VERSION, 0, 0, self.file_id))
        encode_varint(self.length, out)
        encode_blocks(self.blocks, out)
        out += CRC.pack(crc(out))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> FileSummary:
        """Parse :meth:`encode` output.

        Raises:
            IntegrityError: wrong magic, unknown version, checksum mismatch or malformed data.
        """
        what = "file summary"
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if len(view) < _SUMMARY_HEAD.size + CRC.size:
            raise IntegrityError(f"{what}: {len(view)} bytes is too short")
        magic, version, flags, reserved, file_id = _SUMMARY_HEAD.unpack_from(view, 0)
        if magic != _SUMMARY_MAGIC:
            raise IntegrityError(f"{what}: bad magic {bytes(magic)!r}")
        if version != _SUMMARY_VERSION:
            raise IntegrityError(
                f"{what}: unknown version {version} (this reader knows {_SUMMARY_VERSION})"
            )
        (stored,) = CRC.unpack_from(view, len(view) - CRC.size)
        if crc(view[: len(view) - CRC.size]) != stored:
            raise IntegrityError(f"{what}: checksum mismatch")
        if flags or reserved:
            raise IntegrityError(f"{what}: unknown flags {flags:#x}/{reserved:#x}")
        body = view[: len(view) - CRC.size]
        length, pos = decode_varint(body, _SUMMARY_HEAD.size, what)
        blocks, pos = decode_blocks(body, pos, what)
        if pos != len(body):
            raise IntegrityError(f"{what}: {len(body) - pos} trailing bytes")
        return cls(bytes(file_id), length, blocks)

    def __post_init__(self) -> None:
        if not isinstance(self.file_id, bytes) or len(self.file_id) != FILE_ID_SIZE:
            raise InvalidArgumentError(f"file_id must be {FILE_ID_SIZE} bytes")
        if not isinstance(self.blocks, tuple):
            object.__setattr__(self, "blocks", tuple(self.blocks))
