"""Merging small map outputs so that one output partition is one ranged read.

With many partitions each map task's piece of a partition is small (1,000 partitions from 8
maps of 16 MiB: 16 KiB), and a reader of one partition would make one request per map file:
object stores charge per request and answer small ones slowly. When the mean piece is below
``exchange.merge-threshold``, the coordinator (in ``get_source_handles``; in the Dask shuffle,
its plan task) copies the pieces into merged files, partition after partition: one
partition's pieces sit side by side, so a reader fetches a partition, or a range of
neighbouring partitions, with one ranged read.

The copy is of stored bytes, unchanged: a block keeps the identity of the file it was written
in (file id, place, index), and readers check it against that identity
(:func:`~exchange_store.format.read_copied_blocks`), so a merged block is exactly as protected
as the original. Neighbouring partitions are merged in groups of about
``exchange.merge-target-size``; each group reads, from each map file, the one contiguous range
that holds its partitions (map files are partition-contiguous) and writes one merged file.
Groups run on the coordinator's threads (``exchange.source-concurrent-readers``). Merged files
live under the exchange (``{exchange}/_merged/``) and go with it at ``close()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from exchange_store.errors import IntegrityError, InvalidArgumentError
from exchange_store.exchange.handles import (
    ExchangeContext,
    ExchangeSinkReceipt,
    ExchangeSourceHandle,
    SourceFile,
)
from exchange_store.exchange.manifest import Manifest, open_receipt
from exchange_store.exchange.paths import exchange_dir
from exchange_store.exchange.planning import Pieces, collect_pieces, cut_source_handles
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.format import BlockRef

if TYPE_CHECKING:
    from exchange_store.exchange.config import ExchangeManagerConfig

__all__ = [
    "MERGED_DIR",
    "handles_from_receipts",
    "merge_small_pieces",
    "plan_source_handles",
    "should_merge",
]

MERGED_DIR = "_merged"
_MAX_GAP = 1 << 20  # bytes of other partitions read through rather than a second request


def plan_source_handles(
    client: FileSystemClient,
    manifests: Sequence[Manifest],
    cfg: ExchangeManagerConfig,
    context: ExchangeContext,
    key: bytes | None,
    preserve_order: bool,
    generation: int = 0,
) -> list[ExchangeSourceHandle]:
    """The source handles of the selected commits, small pieces merged first when it pays.

    Merging happens when the mean piece is below ``exchange.merge-threshold``, on object
    stores (or anywhere with ``exchange.merge-on-local-filesystem``). ``generation`` counts the
    plans of one exchange: a new plan (after lost data was re-run) writes new merged files and
    never overwrites those that readers of an older plan may still read.
    """
    per_partition = collect_pieces(manifests, cfg, context)
    local = client.scheme == "file"
    if should_merge(per_partition, cfg.merge_threshold) and (
        cfg.merge_on_local_filesystem or not local
    ):
        directories = [
            exchange_dir(b, context.query_id, context.exchange_id) for b in cfg.base_directories
        ]
        per_partition = merge_small_pieces(
            client,
            per_partition,
            directories,
            target=cfg.merge_target_size,
            threads=cfg.source_concurrent_readers,
            generation=generation,
            sync=cfg.sink_fsync_data_files,
        )
    return cut_source_handles(per_partition, cfg, context, key, preserve_order)


def handles_from_receipts(
    client: FileSystemClient,
    receipts: Sequence[ExchangeSinkReceipt],
    cfg: ExchangeManagerConfig,
    context: ExchangeContext,
    key: bytes | None,
    output_partition_count: int,
    *,
    preserve_order: bool = False,
) -> list[ExchangeSourceHandle]:
    """Source handles for the commits ``receipts`` name, without a coordinator object.

    For engines that keep one attempt per task partition and pass the receipts along their
    own task graph (the Dask shuffle's plan task): each receipt's sealed manifest is checked
    with the query's key exactly as ``Exchange.sink_finished`` checks it; small pieces are
    merged as by ``get_source_handles``.

    Raises:
        IntegrityError: a receipt was changed, or names another exchange.
        InvalidArgumentError: two receipts of one task partition.
    """
    q, e = context.query_id, context.exchange_id
    manifests: dict[int, Manifest] = {}
    for r in receipts:
        tp = r.task_partition_id
        where = f"receipt of {q}/{e} task partition {tp} attempt {r.attempt_id}"
        if (r.query_id, r.exchange_id) != (q, e):
            raise IntegrityError(f"{where}: names exchange {r.query_id}/{r.exchange_id}")
        if tp in manifests:
            raise InvalidArgumentError(f"{where}: a second receipt of task partition {tp}")
        m = open_receipt(r, key, where)
        if m.output_partition_count != output_partition_count:
            raise IntegrityError(
                f"{where}: {m.output_partition_count} partitions, the exchange has "
                f"{output_partition_count}"
            )
        manifests[tp] = m
    ordered = [manifests[tp] for tp in sorted(manifests)]
    return plan_source_handles(client, ordered, cfg, context, key, preserve_order)


def should_merge(per_partition: Pieces, threshold: int) -> bool:
    """Whether the mean piece is smaller than ``threshold`` and there is more than one file."""
    pieces = [f for files in per_partition.values() for f in files]
    if threshold <= 0 or not pieces or len({f.path for f in pieces}) < 2:
        return False
    return sum(f.data_size for f in pieces) / len(pieces) < threshold


def merge_small_pieces(
    client: FileSystemClient,
    per_partition: Pieces,
    directories: Sequence[str],
    *,
    target: int,
    threads: int,
    generation: int = 0,
    sync: bool = True,
) -> Pieces:
    """Copy every partition's pieces into merged files; the pieces that now point there.

    Args:
        client: The exchange's client.
        per_partition: The pieces to merge.
        directories: The exchange's directory in each base directory (merged files rotate
            over them).
        target: About how many bytes one merged file holds.
        threads: Groups merged at once.
        generation: The plan's number; a later plan writes other file names.
        sync: fsync the merged files (``exchange.sink-fsync-data-files``).

    Raises:
        IntegrityError: a committed file is shorter than its manifest says.
        StorageError: reading or writing failed.
    """
    groups: list[list[int]] = [[]]
    size = 0
    for p in sorted(per_partition):
        piece = sum(f.data_size for f in per_partition[p])
        if groups[-1] and size + piece > target:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += piece

    prefix = f"g{generation}-" if generation else ""

    def merge(n: int) -> Pieces:
        directory = join(directories[n % len(directories)], MERGED_DIR)
        path = join(directory, f"{prefix}{n:06d}.xsb")
        return _merge_group(client, groups[n], per_partition, path, sync)

    out: Pieces = {}
    with ThreadPoolExecutor(max(1, min(threads, len(groups)))) as pool:
        for merged in pool.map(merge, range(len(groups))):
            out.update(merged)
    return out


def _spans(blocks: list[BlockRef]) -> list[tuple[int, int, list[BlockRef]]]:
    """Neighbouring blocks of one file, read together: (start, length, blocks)."""
    out: list[tuple[int, int, list[BlockRef]]] = []
    for b in sorted(blocks, key=lambda b: b.offset):
        if out and b.offset - (out[-1][0] + out[-1][1]) <= _MAX_GAP:
            start, _, group = out[-1]
            group.append(b)
            out[-1] = (start, max(out[-1][1], b.end - start), group)
        else:
            out.append((b.offset, b.length, [b]))
    return out


def _merge_group(
    client: FileSystemClient, partitions: list[int], per_partition: Pieces, path: str, sync: bool
) -> Pieces:
    wanted: dict[str, list[BlockRef]] = {}
    for p in partitions:
        for f in per_partition[p]:
            wanted.setdefault(f.path, []).extend(f.blocks)
    stored: dict[tuple[str, int], memoryview] = {}
    for source, blocks in wanted.items():
        for start, length, group in _spans(blocks):
            data = memoryview(client.read_range(source, start, length))
            if len(data) != length:
                raise IntegrityError(
                    f"{source}: {len(data)} bytes at offset {start}, its commit lists "
                    f"{length}: the committed file was truncated"
                )
            for b in group:
                stored[source, b.offset] = data[b.offset - start : b.end - start]
    out: Pieces = {}
    stream = client.create(path, sync=sync)
    try:
        offset = 0
        for p in partitions:
            for f in per_partition[p]:
                refs = []
                for b in f.blocks:
                    stream.write(stored[f.path, b.offset])
                    refs.append(
                        BlockRef(b.index, b.partition, offset, b.length, b.records, b.raw_size)
                    )
                    offset += b.length
                out.setdefault(p, []).append(
                    SourceFile(
                        path,
                        f.file_id,
                        f.context,
                        f.task_partition_id,
                        f.attempt_id,
                        f.run_id,
                        f.file_index,
                        tuple(refs),
                    )
                )
        stream.close()
    except BaseException:
        stream.abort()
        raise
    return out
