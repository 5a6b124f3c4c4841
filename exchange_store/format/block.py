"""Encoding and decoding of one block, and the per-file keys that bind blocks to their file."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from itertools import accumulate, pairwise

import crc32c
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange_store.codecs.base import Codec
from exchange_store.codecs.registry import codec_for_id
from exchange_store.crypto.aes import TAG_SIZE, derive_key, nonce_for
from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.format.model import BlockRef
from exchange_store.format.structs import (
    BLOCK_COMPRESSED,
    BLOCK_ENCRYPTED,
    BLOCK_FLAGS_KNOWN,
    BLOCK_HEADER,
    BLOCK_OVERHEAD,
    CRC,
    FILE_ID_SIZE,
    FILE_INFO,
    MAGIC,
    MAX_U32,
    VERSION,
    crc,
)

__all__ = [
    "CompressionProbe",
    "FileKeys",
    "build_record_section",
    "check_context",
    "decode_block_view",
    "encode_block",
    "reader_keys",
]

Buffer = bytes | bytearray | memoryview

_BYTES_TYPES = frozenset((bytes, bytearray))
# Uncompressed encrypted blocks whose records average at least this are decrypted record by
# record (each straight into its bytes); smaller records are cheaper to slice from one call.
_STREAM_MIN_RECORD = 4096
_HSIZE = BLOCK_HEADER.size
_CRC_SIZE = CRC.size


def check_context(context: object) -> bytes:
    """Return ``context`` as bytes; it must be bytes-like.

    Raises:
        InvalidArgumentError: ``context`` is not bytes-like.
    """
    if isinstance(context, bytes):
        return context
    if isinstance(context, bytearray | memoryview):
        return bytes(context)
    raise InvalidArgumentError(
        f"context must be bytes (e.g. b'q1/stage-1/tp3/a0/f2'), got {type(context).__name__}"
    )


def check_file_id(file_id: object) -> bytes:
    """Return ``file_id`` if it is 16 bytes, else raise InvalidArgumentError."""
    if not isinstance(file_id, bytes) or len(file_id) != FILE_ID_SIZE:
        raise InvalidArgumentError(f"file_id must be {FILE_ID_SIZE} bytes, got {file_id!r}")
    return file_id


class FileKeys:
    """What binds the blocks of one file: its id, the caller's context and the file subkey.

    Attributes:
        file_id: The file's random 16-byte id.
        context: The caller's context bytes (exchange, task partition, attempt, file).
        cipher: AES-256-GCM under HKDF(key, salt=file_id, info=FILE_INFO), or None.
        aes: The same subkey for streaming GCM decryption (:func:`_decrypt_records`), or None.
        crc_prefix: ``file_id || u32 len(context) || context``, checksummed before every block
            and the footer, so a block of another file or context fails its CRC as well.
        aad_prefix: ``"XSRF" || version || file_id``, the start of every block's GCM AAD.
    """

    __slots__ = ("aad_prefix", "aes", "cipher", "context", "crc_seed", "file_id")

    def __init__(self, file_id: bytes, key: bytes | None, context: bytes) -> None:
        self.file_id = file_id
        self.context = context
        self.cipher: AESGCM | None = None
        self.aes: algorithms.AES | None = None
        if key is not None:
            subkey = derive_key(key, file_id, FILE_INFO)
            self.cipher, self.aes = AESGCM(subkey), algorithms.AES(subkey)
        self.crc_seed = crc(file_id, struct.pack("<I", len(context)), context)
        self.aad_prefix = MAGIC + bytes([VERSION]) + file_id

    def __repr__(self) -> str:
        return f"FileKeys(file_id={self.file_id.hex()}, encrypted={self.cipher is not None})"


@functools.lru_cache(maxsize=4096)
def reader_keys(file_id: bytes, key: bytes | None, context: bytes) -> FileKeys:
    """The FileKeys of a file being read, derived once per process and file.

    Every partition of a file is read by its own source, so the same file's subkey would
    otherwise be derived (HKDF) once per partition. FileKeys are immutable after creation and
    AESGCM is thread-safe, so one object serves every reader.
    """
    return FileKeys(file_id, key, context)


def _nbytes(record: object) -> int:
    if isinstance(record, bytes | bytearray):
        return len(record)
    if isinstance(record, memoryview):
        return record.nbytes
    raise InvalidArgumentError(
        f"a record must be bytes, bytearray or memoryview, got {type(record).__name__}"
    )


def build_record_section(records: Sequence[Buffer]) -> tuple[bytes, int]:
    """The raw section of a block: ``u32 length`` per record, then the records' bytes.

    Returns:
        (section, record count). The section is a fresh copy, so the caller may reuse its
        buffers as soon as this returns.

    Raises:
        InvalidArgumentError: a record is not bytes-like or is 4 GiB or larger.
    """
    if set(map(type, records)) <= _BYTES_TYPES:
        lengths = list(map(len, records))  # the usual case, without a call per record
    else:
        lengths = [_nbytes(r) for r in records]
    n = len(lengths)
    if n > MAX_U32:
        raise InvalidArgumentError(f"a block holds at most {MAX_U32} records, got {n}")
    if lengths and max(lengths) > MAX_U32:
        raise InvalidArgumentError(f"a record is at most {MAX_U32} bytes, got {max(lengths)}")
    table = struct.pack(f"<{n}I", *lengths)
    return b"".join([table, *records]), n


class CompressionProbe:
    """Stops trying to compress data that does not shrink enough, and tries again now and then.

    A compressed block is kept only when it is at least ``min_saving`` (a fraction) smaller
    than its raw section. After ``streak`` blocks in a row that shrank by less than that (or
    3%, whichever is more), the next ``skip`` blocks are stored raw without calling the codec
    (random or already compressed data costs the codec's time for nothing); then one block is
    tried again. A raw block in a compressed file is ordinary: its header says so. Updated
    from encoding threads: a lost update only moves a probe by a block.
    """

    def __init__(self, streak: int = 4, skip: int = 32, min_saving: float = 0.0) -> None:
        if not 0.0 <= min_saving < 1.0:
            raise InvalidArgumentError(f"min_saving must be in [0, 1), got {min_saving!r}")
        self._streak = streak
        self._skip = skip
        self._misses = 0
        self._skipping = 0
        self._keep = 1.0 - min_saving
        self._worth = 1.0 - max(min_saving, 0.03)

    def should_try(self) -> bool:
        """Whether to compress the next block."""
        if self._skipping > 0:
            self._skipping -= 1
            return False
        return True

    def record(self, raw: int, packed: int) -> bool:
        """Account one compressed block; whether its compressed form is worth keeping."""
        if packed <= raw * self._worth:
            self._misses = 0
        else:
            self._misses += 1
            if self._misses >= self._streak:
                self._misses = 0
                self._skipping = self._skip
        return packed < raw and packed <= raw * self._keep


def encode_block(
    keys: FileKeys,
    codec: Codec,
    section: bytes,
    index: int,
    partition: int,
    records: int,
    probe: CompressionProbe | None = None,
) -> list[bytes]:
    """Compress, encrypt and checksum one block; returns its parts (header, payload, crc).

    Safe to call from several threads at once (codecs, AESGCM and crc32c are). With a
    ``probe``, data that recently did not shrink is stored raw without trying.
    """
    flags = 0
    payload: bytes = section
    if not codec.is_identity and section and (probe is None or probe.should_try()):
        packed = codec.compress(section)
        if (
            probe.record(len(section), len(packed))
            if probe is not None
            else len(packed) < len(section)
        ):
            payload = packed
            flags |= BLOCK_COMPRESSED
    if keys.cipher is not None:
        flags |= BLOCK_ENCRYPTED
        header = BLOCK_HEADER.pack(
            index,
            partition,
            records,
            flags,
            codec.codec_id,
            0,
            len(section),
            len(payload) + TAG_SIZE,
        )
        payload = keys.cipher.encrypt(
            nonce_for(index), payload, b"".join((keys.aad_prefix, header, keys.context))
        )
    else:
        header = BLOCK_HEADER.pack(
            index, partition, records, flags, codec.codec_id, 0, len(section), len(payload)
        )
    return [header, payload, CRC.pack(_block_crc(keys, header, payload, flags))]


def _block_crc(keys: FileKeys, header: Buffer, payload: Buffer, flags: int) -> int:
    """CRC32C of ``crc_prefix || header || payload``; of an encrypted block's tag only.

    An encrypted payload is authenticated by its GCM tag, so its CRC covers the header and
    the tag: any flip is still caught (by the CRC, or by GCM) without a pass over the data.
    """
    covered = payload[-TAG_SIZE:] if flags & BLOCK_ENCRYPTED else payload
    return crc32c.crc32c(covered, crc32c.crc32c(header, keys.crc_seed))


def _codec_for(codec_id: int) -> Codec | None:
    cls = codec_for_id(codec_id)
    return cls() if cls is not None else None


def decode_block_view(
    view: memoryview, ref: BlockRef, keys: FileKeys, codec: Codec, where: str
) -> list[bytes]:
    """Check and decode one stored block; returns its records.

    Args:
        view: Exactly the block's stored bytes.
        ref: Where the block should be and what it should hold (from a footer or manifest).
        keys: The file's id, context and cipher.
        codec: The codec the caller expects; blocks written with another known codec are
            decoded with that one (the id is in the block header).
        where: Names the file in error messages.

    Raises:
        IntegrityError: any check fails (length, CRC, header vs ``ref``, GCM tag, codec,
            record framing). No record of a failing block is returned.
    """
    size = len(view)
    if size != ref.length or size < BLOCK_OVERHEAD:
        raise _error(where, ref, f"{size} bytes, expected {ref.length}")
    header = view[:_HSIZE]
    payload = view[_HSIZE : size - _CRC_SIZE]
    index, partition, records, flags, codec_id, reserved, raw_size, payload_len = (
        BLOCK_HEADER.unpack_from(view)
    )
    if _block_crc(keys, header, payload, flags) != CRC.unpack_from(view, size - _CRC_SIZE)[0]:
        raise _error(where, ref, "checksum mismatch (data changed, moved or of another file)")
    if (
        index != ref.index
        or partition != ref.partition
        or records != ref.records
        or raw_size != ref.raw_size
        or payload_len != size - BLOCK_OVERHEAD
    ):
        raise _error(
            where,
            ref,
            f"header says block {index} of partition {partition} with {records} records,"
            f" {raw_size} raw bytes, which does not match the index",
        )
    if flags & ~BLOCK_FLAGS_KNOWN or reserved:
        raise _error(where, ref, f"unknown block flags {flags:#x}/{reserved:#x}")
    if not flags & BLOCK_COMPRESSED:
        stored = payload_len - (TAG_SIZE if flags & BLOCK_ENCRYPTED else 0)
        if stored != raw_size:
            raise _error(where, ref, f"raw block holds {stored} bytes, expected {raw_size}")
    body: Buffer
    cipher = keys.cipher
    if cipher is not None:
        if not flags & BLOCK_ENCRYPTED:
            raise _error(where, ref, "block is not encrypted but a key was given")
        aad = b"".join((keys.aad_prefix, header, keys.context))
        try:
            if (
                not flags & BLOCK_COMPRESSED
                and records
                and raw_size - 4 * records >= _STREAM_MIN_RECORD * records
            ):
                return _decrypt_records(keys, index, payload, aad, records, raw_size, where, ref)
            body = cipher.decrypt(nonce_for(index), payload, aad)
        except InvalidTag:
            raise _error(
                where, ref, "authentication failed (wrong key or context, or data changed)"
            ) from None
    elif flags & BLOCK_ENCRYPTED:
        raise _error(where, ref, "block is encrypted but no key was given")
    else:
        body = payload
    if flags & BLOCK_COMPRESSED:
        dec = codec if codec_id == codec.codec_id else _codec_for(codec_id)
        if dec is None:
            raise _error(where, ref, f"unknown codec id {codec_id}")
        try:
            body = dec.decompress(body, raw_size)
        except Exception as exc:
            raise _error(where, ref, f"{dec.name} decompression failed: {exc}") from exc
    return _split_records(body, records, raw_size, where, ref)


def _decrypt_records(
    keys: FileKeys,
    index: int,
    payload: memoryview,
    aad: bytes,
    records: int,
    raw_size: int,
    where: str,
    ref: BlockRef,
) -> list[bytes]:
    """Decrypt an uncompressed block record by record, each straight into its own ``bytes``.

    One GCM message, decrypted in pieces: the same work as one call, without copying each
    record out of the decrypted block afterwards. Records are returned only once the tag
    has been verified.

    Raises:
        InvalidTag: the block is not authentic (the caller turns it into IntegrityError).
        IntegrityError: the record lengths do not add up to the block.
    """
    assert keys.aes is not None
    body = payload[:-TAG_SIZE]  # raw_size bytes: checked by the caller
    decryptor = Cipher(
        keys.aes, modes.GCM(nonce_for(index), bytes(payload[-TAG_SIZE:]))
    ).decryptor()
    decryptor.authenticate_additional_data(aad)
    table = 4 * records
    lengths = struct.unpack(f"<{records}I", decryptor.update(body[:table]))
    if sum(lengths) != raw_size - table:
        decryptor.update(body[table:])
        decryptor.finalize()  # a changed table fails the tag here; one that passes is refused:
        raise _error(where, ref, "record lengths do not add up to the block size")
    out = []
    pos = table
    for length in lengths:
        piece = decryptor.update(body[pos : pos + length])
        if len(piece) != length:  # GCM is a stream mode: never, unless OpenSSL changes
            raise RuntimeError(f"GCM decryption returned {len(piece)} of {length} bytes")
        out.append(piece)
        pos += length
    decryptor.finalize()
    return out


def _error(where: str, ref: BlockRef, what: str) -> IntegrityError:
    """An IntegrityError naming the file, the block and what is wrong with it."""
    return IntegrityError(
        f"{where}: block {ref.index} (partition {ref.partition}, offset {ref.offset}): {what}"
    )


def _split_records(
    body: Buffer, records: int, raw_size: int, where: str, ref: BlockRef
) -> list[bytes]:
    table = 4 * records
    if table > raw_size:
        raise _error(where, ref, f"{records} records do not fit in {raw_size} bytes")
    lengths = struct.unpack_from(f"<{records}I", body, 0)
    if sum(lengths) != raw_size - table:
        raise _error(where, ref, "record lengths do not add up to the block size")
    ends = list(accumulate(lengths, initial=table))
    if not isinstance(body, bytes):
        if records and raw_size - table >= 1024 * records:
            # large records: one copy each, straight from the read buffer
            return [bytes(body[a:b]) for a, b in pairwise(ends)]
        body = bytes(body)
    return [body[a:b] for a, b in pairwise(ends)]
