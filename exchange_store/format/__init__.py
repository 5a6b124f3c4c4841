"""The record-file format: framed, checksummed, compressed and encrypted blocks of records.

Used by the exchange (one data file holds blocks of many output partitions; readers fetch one
partition's blocks by ranged reads) and the snapshot store (one long stream per file). Small
metadata files are protected with :func:`seal` / :func:`unseal`. See ``docs/FORMAT.md``.
"""

from __future__ import annotations

from exchange_store.format.model import BlockRef, FileSummary, FormatOptions
from exchange_store.format.reader import (
    DEFAULT_MAX_COALESCE,
    UnknownFormatVersionError,
    decode_block,
    read_copied_blocks,
    read_file,
    read_partition,
    read_partition_blocks,
    read_stream,
    read_summary,
)
from exchange_store.format.seal import seal, unseal
from exchange_store.format.writer import RecordFileWriter, RecordStreamWriter

__all__ = [
    "DEFAULT_MAX_COALESCE",
    "BlockRef",
    "FileSummary",
    "FormatOptions",
    "RecordFileWriter",
    "RecordStreamWriter",
    "UnknownFormatVersionError",
    "decode_block",
    "read_copied_blocks",
    "read_file",
    "read_partition",
    "read_partition_blocks",
    "read_stream",
    "read_summary",
    "seal",
    "unseal",
]
