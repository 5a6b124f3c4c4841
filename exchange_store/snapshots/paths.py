"""Where the snapshot store keeps things: pure path functions, no I/O.

Layout under one base directory (a job lives entirely under one base directory, chosen by a
stable hash of its id when several are configured)::

    {base}/{job_id}/
        _ids/{snapshot_id:010d}              id allocation markers (write_exclusive; never reused)
        chk-{snapshot_id:010d}/              a checkpoint (sp-{snapshot_id:010d}/ for a savepoint)
            _pending                         begin record: tasks, kind, deadline (sealed)
            _lease                           lease of the coordinator that began it (while pending)
            {task_id}.{attempt}.state        one task attempt's state (record stream, see FORMAT)
            {task_id}.commit                 exclusive task commit marker naming the winning file
            _metadata                        the outcome, written once with write_exclusive:
                                             state "completed" (the snapshot) or "expired"
            _expired                         informational marker written after expiry won

A snapshot is *completed* exactly when its ``_metadata`` holds state ``completed``. Completion
and expiry both race to create ``_metadata`` exclusively; whichever lands first decides, so a
snapshot can never become complete after it expired (nor expire once complete).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from exchange_store.filesystems.base import join
from exchange_store.ids import check_id

__all__ = [
    "COMMIT_SUFFIX",
    "EXPIRED_NAME",
    "IDS_DIR",
    "LEASE_NAME",
    "METADATA_NAME",
    "PENDING_NAME",
    "STATE_SUFFIX",
    "SnapshotDirName",
    "choose_base",
    "commit_marker_path",
    "context_for",
    "expired_path",
    "id_marker_path",
    "ids_dir",
    "job_dir",
    "lease_path",
    "metadata_path",
    "parse_id_marker",
    "parse_snapshot_dir",
    "parse_state_file",
    "pending_path",
    "snapshot_dir",
    "snapshot_dir_name",
    "state_file_name",
    "state_path",
]

IDS_DIR = "_ids"
PENDING_NAME = "_pending"
METADATA_NAME = "_metadata"
EXPIRED_NAME = "_expired"
LEASE_NAME = "_lease"
STATE_SUFFIX = ".state"
COMMIT_SUFFIX = ".commit"
CHECKPOINT_PREFIX = "chk-"
SAVEPOINT_PREFIX = "sp-"

_SNAPSHOT_DIR = re.compile(r"(chk|sp)-(\d{10})")
_ID_MARKER = re.compile(r"\d{10}")
_STATE_FILE = re.compile(r"([A-Za-z0-9_-]{1,128})\.([0-9a-f]{1,64})\.state")


@dataclass(frozen=True, slots=True)
class SnapshotDirName:
    """A parsed snapshot directory name (``chk-0000000007``).

    Attributes:
        snapshot_id: The snapshot id.
        savepoint: Whether it is a savepoint (``sp-``) rather than a checkpoint (``chk-``).
    """

    snapshot_id: int
    savepoint: bool


def choose_base(bases: Sequence[str], job_id: str) -> str:
    """The base directory that holds ``job_id`` (stable CRC32 of the id over the list)."""
    if len(bases) == 1:
        return bases[0]
    return bases[zlib.crc32(job_id.encode()) % len(bases)]


def job_dir(base: str, job_id: str) -> str:
    """``{base}/{job_id}``."""
    return join(base, check_id(job_id, "job_id"))


def ids_dir(base: str, job_id: str) -> str:
    """``{base}/{job_id}/_ids``: the id allocation markers."""
    return join(job_dir(base, job_id), IDS_DIR)


def id_marker_path(base: str, job_id: str, snapshot_id: int) -> str:
    """``{base}/{job_id}/_ids/{snapshot_id:010d}``."""
    return join(ids_dir(base, job_id), f"{snapshot_id:010d}")


def parse_id_marker(name: str) -> int | None:
    """The snapshot id of an id marker file name, or None."""
    return int(name) if _ID_MARKER.fullmatch(name) else None


def snapshot_dir_name(snapshot_id: int, savepoint: bool) -> str:
    """``chk-{id:010d}`` or ``sp-{id:010d}``."""
    prefix = SAVEPOINT_PREFIX if savepoint else CHECKPOINT_PREFIX
    return f"{prefix}{snapshot_id:010d}"


def parse_snapshot_dir(name: str) -> SnapshotDirName | None:
    """Parse a snapshot directory name; None for anything else (``_ids``, stray files)."""
    m = _SNAPSHOT_DIR.fullmatch(name)
    if m is None:
        return None
    return SnapshotDirName(int(m.group(2)), m.group(1) == "sp")


def snapshot_dir(base: str, job_id: str, snapshot_id: int, savepoint: bool) -> str:
    """``{base}/{job_id}/chk-{id:010d}`` (or ``sp-...``)."""
    return join(job_dir(base, job_id), snapshot_dir_name(snapshot_id, savepoint))


def pending_path(directory: str) -> str:
    """The begin record of the snapshot at ``directory``."""
    return join(directory, PENDING_NAME)


def metadata_path(directory: str) -> str:
    """The outcome record (completed or expired) of the snapshot at ``directory``."""
    return join(directory, METADATA_NAME)


def expired_path(directory: str) -> str:
    """The informational expiry marker of the snapshot at ``directory``."""
    return join(directory, EXPIRED_NAME)


def lease_path(directory: str) -> str:
    """The coordinator's lease of the pending snapshot at ``directory``."""
    return join(directory, LEASE_NAME)


def state_file_name(task_id: str, attempt: str) -> str:
    """``{task_id}.{attempt}.state``: one writer attempt's data file."""
    return f"{check_id(task_id, 'task_id')}.{attempt}{STATE_SUFFIX}"


def parse_state_file(name: str) -> tuple[str, str] | None:
    """``(task_id, attempt)`` of a state file name, or None."""
    m = _STATE_FILE.fullmatch(name)
    return (m.group(1), m.group(2)) if m else None


def state_path(directory: str, task_id: str, attempt: str) -> str:
    """Full path of one attempt's state file."""
    return join(directory, state_file_name(task_id, attempt))


def commit_marker_path(directory: str, task_id: str) -> str:
    """``{directory}/{task_id}.commit``: the task's exclusive commit marker."""
    return join(directory, f"{check_id(task_id, 'task_id')}{COMMIT_SUFFIX}")


def context_for(job_id: str, snapshot_id: int, what: str) -> bytes:
    """The associated data binding a stored object to its place.

    ``what`` is a task id (state data), ``{task_id}.commit``, ``_pending`` or ``_metadata``.
    A file moved to another job, snapshot, task or role fails its integrity check.
    """
    return f"exchange-store/snapshot/v1/{job_id}/{snapshot_id}/{what}".encode()
