"""Planning reads: the source handles of an exchange's selected commits.

Each output partition with data gets one handle per ``exchange.source-handle-target-data-size``
of stored bytes (and at most ``exchange.source-max-files-per-handle`` data files). A handle
lists its pieces (the partition's blocks in one data file) packed compactly; with
``preserve_order`` a task partition's pieces stay in one handle, in order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from exchange_store.exchange.handles import (
    ExchangeContext,
    ExchangeSourceHandle,
    SourceFile,
    pack_source_files,
)
from exchange_store.exchange.manifest import Manifest
from exchange_store.exchange.paths import (
    attempt_dir,
    base_directory_for,
    data_file_context,
    data_file_path,
    run_dir,
)
from exchange_store.format import BlockRef

if TYPE_CHECKING:
    from exchange_store.exchange.config import ExchangeManagerConfig

__all__ = ["Pieces", "collect_pieces", "cut_source_handles"]


Pieces = dict[int, list[SourceFile]]
"""Output partition -> its pieces (one data file's blocks of it), in task partition order."""


def collect_pieces(
    manifests: Sequence[Manifest],
    cfg: ExchangeManagerConfig,
    context: ExchangeContext,
    only: Collection[int] | None = None,
) -> Pieces:
    """Every output partition's pieces in the selected commits (or those of ``only``)."""
    q, e = context.query_id, context.exchange_id
    per_partition: Pieces = {}
    for m in manifests:
        base = base_directory_for(cfg.base_directories, m.task_partition_id)
        directory = run_dir(attempt_dir(base, q, e, m.task_partition_id, m.attempt_id), m.run_id)
        for f in m.files:
            aad = data_file_context(q, e, m.task_partition_id, m.attempt_id, m.run_id, f.index)
            for partition, blocks in f.summary.by_partition().items():
                if only is not None and partition not in only:
                    continue
                per_partition.setdefault(partition, []).append(
                    SourceFile(
                        path=data_file_path(directory, f.index),
                        file_id=f.summary.file_id,
                        context=aad,
                        task_partition_id=m.task_partition_id,
                        attempt_id=m.attempt_id,
                        run_id=m.run_id,
                        file_index=f.index,
                        blocks=blocks,
                    )
                )
    return per_partition


def cut_source_handles(
    per_partition: Pieces,
    cfg: ExchangeManagerConfig,
    context: ExchangeContext,
    key: bytes | None,
    preserve_order: bool,
) -> list[ExchangeSourceHandle]:
    """Source handles: per output partition, cut near the target data size.

    Args:
        per_partition: The pieces (from :func:`collect_pieces`, perhaps merged).
        cfg: The exchange manager's configuration (base directories, target size, codec).
        context: The exchange.
        key: The per-query key, or None.
        preserve_order: Whether a task partition's pieces stay together, in order.
    """
    q, e = context.query_id, context.exchange_id
    target = cfg.source_handle_target_data_size
    max_files = cfg.source_max_files_per_handle
    handles: list[ExchangeSourceHandle] = []
    for partition in sorted(per_partition):
        current: list[SourceFile] = []
        size = 0

        def emit(files: list[SourceFile], data_size: int, p: int = partition) -> None:
            pieces, locations = pack_source_files(files, cfg.base_directories, q, e)
            handles.append(
                ExchangeSourceHandle(
                    query_id=q,
                    exchange_id=e,
                    partition_id=p,
                    data_size=data_size,
                    base_directories=cfg.base_directories,
                    pieces=pieces,
                    preserve_order=preserve_order,
                    codec=cfg.codec,
                    compression_level=cfg.compression_level,
                    key=key,
                    locations=locations,
                )
            )

        for chunk in _chunks(per_partition[partition], target, preserve_order):
            chunk_size = sum(f.data_size for f in chunk)
            full = current and (size + chunk_size > target or len(current) + len(chunk) > max_files)
            if full:
                emit(current, size)
                current, size = [], 0
            current.extend(chunk)
            size += chunk_size
        if current:
            emit(current, size)
    return handles


def _chunks(files: list[SourceFile], target: int, preserve_order: bool) -> list[list[SourceFile]]:
    """Units that stay in one handle.

    A task partition's files when order is preserved, else one file's blocks, split at
    block boundaries when larger than ``target``.
    """
    if preserve_order:
        chunks: list[list[SourceFile]] = []
        for f in files:
            if chunks and chunks[-1][-1].task_partition_id == f.task_partition_id:
                chunks[-1].append(f)
            else:
                chunks.append([f])
        return chunks
    out: list[list[SourceFile]] = []
    for f in files:
        blocks: list[BlockRef] = []
        size = 0
        for block in f.blocks:
            if blocks and size + block.length > target:
                out.append([f.with_blocks(blocks)])
                blocks, size = [], 0
            blocks.append(block)
            size += block.length
        if blocks:
            out.append([f.with_blocks(blocks)] if len(blocks) != len(f.blocks) else [f])
    return out
