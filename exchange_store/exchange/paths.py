"""Where an exchange's bytes live: pure path functions, and their inverse.

Layout under every base directory ``{base}``::

    {base}/{query_id}/{exchange_id}/_lease                       lease of the open exchange
    {base0}/{query_id}/{exchange_id}/_exchange                   its shape and selections
    {base}/{query_id}/{exchange_id}/{hh}-{tp}/{attempt}/_manifest      commit marker + index
    {base}/{query_id}/{exchange_id}/{hh}-{tp}/{attempt}/{run}/data-{n}.xsf   data files of a run

``tp`` is the task partition id and ``attempt`` the attempt id (decimal integers); ``hh`` is
two hex digits derived from (query, exchange, task partition) by SHA-256, so task partitions
spread over many S3 key prefixes while anyone holding the ids can compute the path. Task
partition ``tp`` lives under ``base_directories[tp % len(base_directories)]``; the exchange's
``_lease`` is written in every base directory. An attempt writes only under its own
``{attempt}/`` directory, and is committed exactly when its ``_manifest`` exists. Engines run
the same attempt more than once (Dask recomputes a lost key with the same arguments): each run
(one :class:`~exchange_store.exchange.sink.ExchangeSink`) writes its data files under its own
``{run}/`` directory (16 random hex digits), so runs never touch each other's files; the
manifest names the run it commits. Each attempt writes
``ceil(bytes / exchange.sink-max-file-size)`` data files whatever the number of output
partitions (blocks of all partitions are interleaved in one file; the manifest holds the
per-partition block index).

Every function here is pure (no I/O) so the admin tools can use them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from exchange_store.errors import InvalidArgumentError
from exchange_store.filesystems.base import join
from exchange_store.ids import ID_PATTERN, check_id, check_int_id

__all__ = [
    "DATA_SUFFIX",
    "LEASE_NAME",
    "MANIFEST_NAME",
    "RUN_ID",
    "ExchangePath",
    "attempt_dir",
    "base_directory_for",
    "check_run_id",
    "data_file_context",
    "data_file_name",
    "data_file_path",
    "descriptor_path",
    "exchange_dir",
    "lease_path",
    "manifest_context",
    "manifest_path",
    "new_run_id",
    "parse_exchange_path",
    "parse_task_partition_dirname",
    "query_dir",
    "run_dir",
    "task_partition_dir",
    "task_partition_dirname",
    "task_partition_prefix",
]

LEASE_NAME = "_lease"
DESCRIPTOR_NAME = "_exchange"
MANIFEST_NAME = "_manifest"
DATA_SUFFIX = ".xsf"

_TP_DIR = re.compile(r"([0-9a-f]{2})-(0|[1-9][0-9]*)")
_ATTEMPT_DIR = re.compile(r"0|[1-9][0-9]*")
_DATA_FILE = re.compile(r"data-(0|[1-9][0-9]*)\.xsf")
RUN_ID = re.compile(r"[0-9a-f]{16}")


def query_dir(base: str, query_id: str) -> str:
    """``{base}/{query_id}``."""
    return join(base, check_id(query_id, "query_id"))


def exchange_dir(base: str, query_id: str, exchange_id: str) -> str:
    """``{base}/{query_id}/{exchange_id}``: everything of one exchange in one base dir."""
    return join(query_dir(base, query_id), check_id(exchange_id, "exchange_id"))


def lease_path(base: str, query_id: str, exchange_id: str) -> str:
    """``{base}/{query_id}/{exchange_id}/_lease``."""
    return join(exchange_dir(base, query_id, exchange_id), LEASE_NAME)


def descriptor_path(base: str, query_id: str, exchange_id: str) -> str:
    """``{base}/{query_id}/{exchange_id}/_exchange`` (in the first base directory)."""
    return join(exchange_dir(base, query_id, exchange_id), DESCRIPTOR_NAME)


def task_partition_prefix(query_id: str, exchange_id: str, task_partition_id: int) -> str:
    """The two hex digits ``hh`` that spread task partitions over key prefixes."""
    text = f"{query_id}/{exchange_id}/{task_partition_id}".encode()
    return hashlib.sha256(text).hexdigest()[:2]


def task_partition_dirname(query_id: str, exchange_id: str, task_partition_id: int) -> str:
    """``{hh}-{task_partition_id}``."""
    tp = check_int_id(task_partition_id, "task_partition_id")
    return f"{task_partition_prefix(query_id, exchange_id, tp)}-{tp}"


def parse_task_partition_dirname(name: str) -> tuple[str, int] | None:
    """``"3f-12"`` -> ``("3f", 12)``; None when ``name`` is not a task partition directory."""
    match = _TP_DIR.fullmatch(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def base_directory_for(base_directories: Sequence[str], task_partition_id: int) -> str:
    """The base directory holding task partition ``task_partition_id``."""
    if not base_directories:
        raise ValueError("no base directories")
    return base_directories[task_partition_id % len(base_directories)]


def task_partition_dir(base: str, query_id: str, exchange_id: str, task_partition_id: int) -> str:
    """``{base}/{query_id}/{exchange_id}/{hh}-{tp}``."""
    return join(
        exchange_dir(base, query_id, exchange_id),
        task_partition_dirname(query_id, exchange_id, task_partition_id),
    )


def attempt_dir(
    base: str, query_id: str, exchange_id: str, task_partition_id: int, attempt_id: int
) -> str:
    """``{base}/{query_id}/{exchange_id}/{hh}-{tp}/{attempt}``: all one attempt writes."""
    attempt = check_int_id(attempt_id, "attempt_id")
    return join(task_partition_dir(base, query_id, exchange_id, task_partition_id), str(attempt))


def new_run_id() -> str:
    """A fresh run id: 16 random hex digits (64 bits: runs of one attempt never collide)."""
    return secrets.token_hex(8)


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is 16 lower-case hex digits.

    Raises:
        InvalidArgumentError: anything else (it becomes a path component).
    """
    if not isinstance(run_id, str) or RUN_ID.fullmatch(run_id) is None:
        raise InvalidArgumentError(f"invalid run id {run_id!r}: must be 16 lower-case hex digits")
    return run_id


def run_dir(attempt_directory: str, run_id: str) -> str:
    """``{attempt}/{run}``: the data files of one run of an attempt."""
    return join(attempt_directory, check_run_id(run_id))


def data_file_name(index: int) -> str:
    """``data-{index}.xsf``."""
    return f"data-{index}{DATA_SUFFIX}"


def data_file_path(attempt_directory: str, index: int) -> str:
    """The ``index``-th data file of an attempt."""
    return join(attempt_directory, data_file_name(index))


def manifest_path(attempt_directory: str) -> str:
    """The commit manifest of an attempt."""
    return join(attempt_directory, MANIFEST_NAME)


def data_file_context(
    query_id: str,
    exchange_id: str,
    task_partition_id: int,
    attempt_id: int,
    run_id: str,
    index: int,
) -> bytes:
    """Associated data binding a data file's blocks to their place (``q/e/tp/a/run/n``)."""
    return (
        f"xs-data/{query_id}/{exchange_id}/{task_partition_id}/{attempt_id}/{run_id}/{index}"
    ).encode()


def manifest_context(
    query_id: str, exchange_id: str, task_partition_id: int, attempt_id: int
) -> bytes:
    """Associated data binding a manifest to its attempt."""
    return f"xs-manifest/{query_id}/{exchange_id}/{task_partition_id}/{attempt_id}".encode()


@dataclass(frozen=True, slots=True)
class ExchangePath:
    """What a path under a base directory is, as far as the exchange layout says.

    Attributes:
        base: The base directory.
        query_id: The query, when the path is at least that deep.
        exchange_id: The exchange.
        task_partition_id: The task partition (from ``{hh}-{tp}``).
        attempt_id: The attempt.
        kind: ``query``, ``exchange``, ``lease``, ``descriptor``, ``task_partition``, ``attempt``,
            ``manifest``, ``run``, ``data`` or ``other`` (an unknown name inside the layout).
        file_index: ``n`` of ``data-{n}.xsf``.
        run_id: The run (for ``run`` and ``data``).
    """

    base: str
    query_id: str | None = None
    exchange_id: str | None = None
    task_partition_id: int | None = None
    attempt_id: int | None = None
    kind: str = "other"
    file_index: int | None = None
    run_id: str | None = None


def parse_exchange_path(base: str, path: str) -> ExchangePath | None:
    """Map a path under ``base`` back to its ids; None when it is not under ``base``.

    Parts that do not fit the layout make ``kind == "other"`` with the ids parsed so far.
    """
    root = base.rstrip("/")
    norm = path.rstrip("/")
    if not norm.startswith(root + "/"):
        return None
    parts = norm[len(root) + 1 :].split("/")
    out = ExchangePath(base=base)
    if not parts or not ID_PATTERN.fullmatch(parts[0]):
        return out
    query = parts[0]
    if len(parts) == 1:
        return ExchangePath(base, query, kind="query")
    if not ID_PATTERN.fullmatch(parts[1]):
        return ExchangePath(base, query)
    exchange = parts[1]
    if len(parts) == 2:
        return ExchangePath(base, query, exchange, kind="exchange")
    if len(parts) == 3 and parts[2] == LEASE_NAME:
        return ExchangePath(base, query, exchange, kind="lease")
    if len(parts) == 3 and parts[2] == DESCRIPTOR_NAME:
        return ExchangePath(base, query, exchange, kind="descriptor")
    tp_parsed = parse_task_partition_dirname(parts[2])
    if tp_parsed is None:
        return ExchangePath(base, query, exchange)
    tp = tp_parsed[1]
    if len(parts) == 3:
        return ExchangePath(base, query, exchange, tp, kind="task_partition")
    if not _ATTEMPT_DIR.fullmatch(parts[3]):
        return ExchangePath(base, query, exchange, tp)
    attempt = int(parts[3])
    if len(parts) == 4:
        return ExchangePath(base, query, exchange, tp, attempt, kind="attempt")
    if len(parts) == 5 and parts[4] == MANIFEST_NAME:
        return ExchangePath(base, query, exchange, tp, attempt, kind="manifest")
    if RUN_ID.fullmatch(parts[4]) is None:
        return ExchangePath(base, query, exchange, tp, attempt)
    run = parts[4]
    if len(parts) == 5:
        return ExchangePath(base, query, exchange, tp, attempt, kind="run", run_id=run)
    data = _DATA_FILE.fullmatch(parts[5]) if len(parts) == 6 else None
    if data is not None:
        return ExchangePath(
            base, query, exchange, tp, attempt, "data", int(data.group(1)), run_id=run
        )
    return ExchangePath(base, query, exchange, tp, attempt, run_id=run)
