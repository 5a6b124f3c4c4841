"""The query journal: a query's progress on storage, so a restarted coordinator resumes it.

One sealed file beside the query's exchanges, in the first exchange base directory::

    {base}/{query_id}/_journal/_lease      the coordinator running the query is alive
    {base}/{query_id}/_journal/journal     plan, query attempt, finished tasks per stage

The journal is sealed like a manifest (checksummed; encrypted and authenticated with the query's
key, associated data ``xs-journal/{query_id}``) and replaced atomically. It needs a query key
that a restarted coordinator derives again (``exchange.encryption-key-file``), or encryption
off; otherwise the query keeps no journal. What it says is checked against storage on resume:
the exchanges themselves (``open_exchange``) decide which tasks are finished, so a lost or
damaged journal costs only the ``resumed`` flag, never data. The ``_lease`` makes ``gc`` keep a
query that a coordinator is running or resuming, and collect one that nobody resumed within
its TTL (gc sees ``_journal`` as an exchange directory).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchange_store.errors import (
    ExchangeStoreError,
    IntegrityError,
    InvalidArgumentError,
    StorageFileNotFoundError,
)
from exchange_store.filesystems.base import FileSystemClient, join
from exchange_store.filesystems.lease import LEASE_NAME, Lease
from exchange_store.format import seal, unseal
from exchange_store.scheduler.model import Query

__all__ = ["JOURNAL_DIR", "JournalState", "QueryJournal", "plan_of"]

_log = logging.getLogger(__name__)
JOURNAL_DIR = "_journal"
JOURNAL_NAME = "journal"
_VERSION = 1


def plan_of(query: Query) -> list[dict[str, Any]]:
    """What must match for a journal to be resumed: the stages and their shapes."""
    return [
        {
            "stage": s.stage_id,
            "tasks": s.task_count,
            "inputs": list(s.inputs),
            "partitions": s.output_partitions,
            "preserve_order": s.preserve_order,
        }
        for s in query.stages
    ]


@dataclass(slots=True)
class JournalState:
    """What the journal holds.

    Attributes:
        plan: :func:`plan_of` the query.
        query_attempt: The query attempt running (QUERY retries count up).
        finished: Stage id to {task id: attempt id} of finished tasks.
        exchanges: Stage id to its exchange id.
    """

    plan: list[dict[str, Any]]
    query_attempt: int = 0
    finished: dict[str, dict[int, int]] = field(default_factory=dict)
    exchanges: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The JSON payload (before sealing)."""
        return json.dumps(
            {
                "version": _VERSION,
                "plan": self.plan,
                "query_attempt": self.query_attempt,
                "finished": {
                    s: {str(t): a for t, a in sorted(tasks.items())}
                    for s, tasks in self.finished.items()
                },
                "exchanges": self.exchanges,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, payload: bytes, path: str) -> JournalState:
        """Parse a payload; IntegrityError naming ``path`` when it is not a journal."""
        try:
            raw = json.loads(payload)
            if raw["version"] != _VERSION:
                raise ValueError(f"version {raw['version']}")
            return cls(
                plan=list(raw["plan"]),
                query_attempt=int(raw["query_attempt"]),
                finished={
                    str(s): {int(t): int(a) for t, a in tasks.items()}
                    for s, tasks in raw["finished"].items()
                },
                exchanges={str(s): str(e) for s, e in raw["exchanges"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"{path}: not a query journal ({exc})") from None

    @property
    def tasks_finished(self) -> int:
        """Finished tasks it records."""
        return sum(len(t) for t in self.finished.values())


class QueryJournal:
    """Reads and writes one query's journal and keeps its lease fresh.

    Args:
        client: The exchange manager's filesystem client.
        base: The first exchange base directory.
        query: The query.
        key: The query's durable key (None when exchange data is not encrypted).
        lease_ttl: Seconds the lease stays valid after each refresh.
        min_interval: Fewest seconds between two writes of :meth:`flush` (not forced).
        clock: Monotonic clock.
    """

    def __init__(
        self,
        client: FileSystemClient,
        base: str,
        query: Query,
        key: bytes | None,
        *,
        lease_ttl: float = 60.0,
        min_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._query = query
        self._key = key
        self._base = base
        self._query_dir = join(base, query.query_id)
        self._dir = join(self._query_dir, JOURNAL_DIR)
        self._path = join(self._dir, JOURNAL_NAME)
        self._context = f"xs-journal/{query.query_id}".encode()
        self._lease = Lease(
            client, [join(self._dir, LEASE_NAME)], f"query {query.query_id}", lease_ttl
        )
        self._state = JournalState(plan_of(query))
        self._dirty = False
        self._last = float("-inf")
        self._min_interval = min_interval
        self._clock = clock
        self._started = False

    @property
    def path(self) -> str:
        """Where the journal is."""
        return self._path

    @property
    def state(self) -> JournalState:
        """The state as last loaded or recorded."""
        return self._state

    def load(self) -> JournalState | None:
        """The journal left by an earlier coordinator of this query, or None.

        A journal that fails its checks is logged and treated as absent (the exchanges on
        storage still say which tasks finished).

        Raises:
            InvalidArgumentError: the journal belongs to another plan under the same query id.
            StorageError: storage failed.
        """
        try:
            sealed = self._client.read_file(self._path)
        except StorageFileNotFoundError:
            return None
        try:
            state = JournalState.decode(unseal(sealed, self._key, self._context), self._path)
        except IntegrityError as exc:
            _log.warning("query %s: journal unreadable, ignored: %s", self._query.query_id, exc)
            return None
        if state.plan != plan_of(self._query):
            raise InvalidArgumentError(
                f"query {self._query.query_id} has a journal ({self._path}) of another plan: "
                "a query id names one query; use a new id, or remove the old query with "
                "`exchange-store gc` once its lease expired"
            )
        self._state = state
        return state

    def start(self, query_attempt: int) -> None:
        """Take the lease (over) and write the journal."""
        self._state.query_attempt = query_attempt
        if not self._started:
            self._lease.start()
            self._started = True
        self._dirty = True
        self.flush(force=True)

    def stage_started(self, stage_id: str, exchange_id: str) -> None:
        """Record the exchange of a stage."""
        self._state.exchanges[stage_id] = exchange_id
        self._state.finished.setdefault(stage_id, {})
        self._dirty = True

    def task_finished(self, stage_id: str, task_id: int, attempt_id: int) -> None:
        """Record a finished task (written by the next :meth:`flush`)."""
        self._state.finished.setdefault(stage_id, {})[task_id] = attempt_id
        self._dirty = True

    def task_lost(self, stage_id: str, task_id: int) -> None:
        """Record that a finished task's output was lost (it runs again)."""
        self._state.finished.get(stage_id, {}).pop(task_id, None)
        self._dirty = True

    def new_query_attempt(self, query_attempt: int) -> None:
        """Start over under a new query attempt (QUERY retry policy)."""
        self._state = JournalState(plan_of(self._query), query_attempt)
        self._dirty = True
        self.flush(force=True)

    def flush(self, *, force: bool = False) -> None:
        """Write the journal if something changed (at most every ``min_interval`` unless forced).

        A failed write is logged: the journal only speeds a resume up.
        """
        now = self._clock()
        if not self._dirty or (not force and now - self._last < self._min_interval):
            return
        try:
            self._client.write_file(
                self._path, seal(self._state.encode(), self._key, self._context)
            )
        except ExchangeStoreError as exc:
            _log.warning("query %s: journal not written: %s", self._query.query_id, exc)
            return
        self._dirty = False
        self._last = now

    def close(self) -> None:
        """Stop the lease and delete the journal (the query ended, either way)."""
        if self._started:
            try:
                self._lease.close()
            except ExchangeStoreError as exc:
                _log.warning("query %s: journal lease not removed: %s", self._query.query_id, exc)
        try:
            self._client.delete_recursive(self._dir)
            self._client.prune_empty_dirs(self._query_dir, self._base)
        except ExchangeStoreError as exc:
            _log.warning("query %s: journal not removed: %s", self._query.query_id, exc)
