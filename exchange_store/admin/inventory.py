"""What is in exchange storage: exchanges, their leases, task partitions and attempts.

Both ``exchange-store ls`` and ``exchange-store gc`` read storage through this module. It only
lists and reads; it never writes or deletes.

The layout it understands (written by :mod:`exchange_store.exchange`)::

    {base}/{query_id}/{exchange_id}/_lease
    {base}/{query_id}/{exchange_id}/{hh}-{task_partition}/{attempt_id}/data-{n}.xsf
    {base}/{query_id}/{exchange_id}/{hh}-{task_partition}/{attempt_id}/_manifest

The data of one exchange is spread over every base directory, and each base directory holds a
copy of its lease, so an exchange is grouped by ``(query_id, exchange_id)`` across all of them.
A directory that does not look like an exchange (no lease and no task partition directory) is
never reported, so unrelated data sharing a base directory is left alone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from exchange_store.errors import IntegrityError
from exchange_store.exchange.paths import MANIFEST_NAME, parse_task_partition_dirname
from exchange_store.filesystems.base import FileInfo, FileSystemClient, join
from exchange_store.filesystems.lease import LEASE_NAME, LeaseRecord, read_lease
from exchange_store.ids import ID_PATTERN

__all__ = [
    "MANIFEST_NAME",
    "AttemptInfo",
    "ExchangeInfo",
    "LeaseState",
    "TaskPartitionInfo",
    "describe_exchange",
    "find_exchanges",
    "lease_state",
    "newest_mtime",
    "parse_attempt_dir",
    "parse_task_partition_dir",
    "refresh",
]

_ATTEMPT_DIR = re.compile(r"0|[1-9][0-9]*")

LeaseState = str  # "live" | "expired" | "none" | "unreadable"


def parse_task_partition_dir(name: str) -> int | None:
    """The task partition id of a ``{hh}-{task_partition}`` directory name, else None."""
    parsed = parse_task_partition_dirname(name)
    return None if parsed is None else parsed[1]


def parse_attempt_dir(name: str) -> int | None:
    """The attempt id of an attempt directory name (decimal, no leading zero), else None."""
    return int(name) if _ATTEMPT_DIR.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One attempt directory.

    Attributes:
        attempt_id: The attempt id.
        path: Its directory.
        committed: Whether its ``_manifest`` (the commit marker) is present.
        files: Number of files in it (manifest included).
        size: Bytes in it.
        mtime: Newest modification time in it.
    """

    attempt_id: int
    path: str
    committed: bool
    files: int
    size: int
    mtime: float | None


@dataclass(frozen=True, slots=True)
class TaskPartitionInfo:
    """One task partition with its attempts (from every base directory)."""

    task_partition: int
    attempts: tuple[AttemptInfo, ...]

    @property
    def size(self) -> int:
        """Bytes of all attempts."""
        return sum(a.size for a in self.attempts)


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """One exchange as found in storage.

    Attributes:
        query_id: The query id (first directory level).
        exchange_id: The exchange id (second level).
        dirs: Its directory in each base directory where it has one.
        leases: The lease records found (one per base directory that has a readable one).
        unreadable_leases: Lease files present but not parseable.
        task_partitions: Filled by :func:`describe_exchange`; empty from :func:`find_exchanges`.
    """

    query_id: str
    exchange_id: str
    dirs: tuple[str, ...]
    leases: tuple[LeaseRecord, ...] = ()
    unreadable_leases: tuple[str, ...] = ()
    task_partitions: tuple[TaskPartitionInfo, ...] = field(default=())

    @property
    def lease(self) -> LeaseRecord | None:
        """The freshest lease record, if any."""
        return max(self.leases, key=lambda r: r.expires_at, default=None)

    @property
    def size(self) -> int:
        """Bytes in its attempts (after :func:`describe_exchange`)."""
        return sum(tp.size for tp in self.task_partitions)


def lease_state(info: ExchangeInfo, now: float) -> LeaseState:
    """``live`` when any copy of the lease is fresh, ``expired``, ``unreadable`` or ``none``."""
    if any(not r.expired(now) for r in info.leases):
        return "live"
    if info.leases:
        return "expired"
    if info.unreadable_leases:
        return "unreadable"
    return "none"


def _looks_like_exchange(entries: Iterable[FileInfo]) -> bool:
    for e in entries:
        if not e.is_dir and e.name == LEASE_NAME:
            return True
        if e.is_dir and parse_task_partition_dir(e.name) is not None:
            return True
    return False


def _read_leases(
    client: FileSystemClient, dirs: Sequence[str]
) -> tuple[tuple[LeaseRecord, ...], tuple[str, ...]]:
    leases: list[LeaseRecord] = []
    bad: list[str] = []
    for d in dirs:
        path = join(d, LEASE_NAME)
        try:
            record = read_lease(client, path)
        except IntegrityError:
            bad.append(path)
            continue
        if record is not None:
            leases.append(record)
    return tuple(leases), tuple(bad)


def find_exchanges(
    client: FileSystemClient, roots: Sequence[str], *, only_empty_ok: bool = False
) -> list[ExchangeInfo]:
    """List the exchanges under ``roots`` and read their leases (no deeper walk).

    Args:
        client: The exchange filesystem client.
        roots: The base directories.
        only_empty_ok: Also report directories at exchange level that are empty (a crash
            between ``mkdir`` and the lease write on a local filesystem).

    Returns:
        Exchanges sorted by (query_id, exchange_id).
    """
    dirs: dict[tuple[str, str], list[str]] = {}
    for root in roots:
        for q in client.list(root):
            if not q.is_dir or ID_PATTERN.fullmatch(q.name) is None:
                continue
            for e in client.list(q.path):
                if not e.is_dir or ID_PATTERN.fullmatch(e.name) is None:
                    continue
                entries = client.list(e.path)
                if _looks_like_exchange(entries) or (only_empty_ok and not entries):
                    dirs.setdefault((q.name, e.name), []).append(e.path)
    out = []
    for (query_id, exchange_id), paths in sorted(dirs.items()):
        leases, bad = _read_leases(client, paths)
        out.append(ExchangeInfo(query_id, exchange_id, tuple(paths), leases, bad))
    return out


def refresh(client: FileSystemClient, info: ExchangeInfo) -> ExchangeInfo:
    """Re-read the leases of ``info`` from storage (gc does it right before deleting)."""
    leases, bad = _read_leases(client, info.dirs)
    return ExchangeInfo(info.query_id, info.exchange_id, info.dirs, leases, bad)


def newest_mtime(client: FileSystemClient, paths: Sequence[str]) -> tuple[float | None, int, int]:
    """Newest modification time, total bytes and file count of everything under ``paths``.

    Directory mtimes count too (a local directory created but still empty).
    """
    newest: float | None = None
    size = 0
    files = 0

    def see(mtime: float | None) -> None:
        nonlocal newest
        if mtime is not None and (newest is None or mtime > newest):
            newest = mtime

    for path in paths:
        stack = [path]
        with contextlib.suppress(FileNotFoundError):
            see(client.info(path).mtime)
        while stack:
            for entry in client.list(stack.pop()):
                see(entry.mtime)
                if entry.is_dir:
                    stack.append(entry.path)
                else:
                    size += entry.size
                    files += 1
    return newest, size, files


def describe_exchange(client: FileSystemClient, info: ExchangeInfo) -> ExchangeInfo:
    """Walk the task partitions and attempts of ``info`` (every base directory)."""
    attempts: dict[int, list[AttemptInfo]] = {}
    for d in info.dirs:
        for tp in client.list(d):
            tp_id = parse_task_partition_dir(tp.name) if tp.is_dir else None
            if tp_id is None:
                continue
            for at in client.list(tp.path):
                at_id = parse_attempt_dir(at.name) if at.is_dir else None
                if at_id is None:
                    continue
                files = list(client.walk(at.path))
                mtimes = [f.mtime for f in files if f.mtime is not None]
                attempts.setdefault(tp_id, []).append(
                    AttemptInfo(
                        attempt_id=at_id,
                        path=at.path,
                        committed=any(f.name == MANIFEST_NAME for f in files),
                        files=len(files),
                        size=sum(f.size for f in files),
                        mtime=max(mtimes) if mtimes else at.mtime,
                    )
                )
    tps = tuple(
        TaskPartitionInfo(tp, tuple(sorted(ats, key=lambda a: (a.attempt_id, a.path))))
        for tp, ats in sorted(attempts.items())
    )
    return ExchangeInfo(
        info.query_id,
        info.exchange_id,
        info.dirs,
        info.leases,
        info.unreadable_leases,
        tps,
    )
