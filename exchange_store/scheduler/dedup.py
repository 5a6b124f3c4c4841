"""The result deduplication buffer of the coordinator.

Result records of the final stage are held here until the query attempt succeeds, so the
client never sees the output of a failed attempt (QUERY retry) or of a losing duplicate
attempt (TASK retry, speculation). For each task partition only the first reported attempt is
kept. When the records held exceed ``exchange.deduplication-buffer-size`` they spill into an
exchange of the exchange manager (one output partition per final task, order preserved);
without an exchange manager a spill fails with Trino's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from exchange_store.errors import ConfigurationError, InvalidArgumentError

__all__ = ["EXCHANGE_MANAGER_REQUIRED", "DeduplicationBuffer"]

EXCHANGE_MANAGER_REQUIRED = (
    "Exchange manager must be configured for the failure recovery capabilities to be fully "
    "functional"
)


class DeduplicationBuffer:
    """Holds result records per task partition until the query attempt succeeds.

    Args:
        manager: The exchange manager to spill into, or None (then spilling fails).
        query_id: The query.
        exchange_id: Id of the spill exchange (one per query attempt).
        task_count: Tasks of the final stage.
        capacity: Bytes held in memory before spilling.
    """

    def __init__(
        self,
        manager: Any,
        query_id: str,
        exchange_id: str,
        task_count: int,
        capacity: int,
    ) -> None:
        self._manager = manager
        self._query_id = query_id
        self._exchange_id = exchange_id
        self._task_count = task_count
        self._capacity = capacity
        self._memory: dict[int, list[bytes]] = {}
        self._spilled: set[int] = set()
        self._size = 0
        self._exchange: Any = None
        self._closed = False
        self.spilled_bytes = 0

    @property
    def memory_usage(self) -> int:
        """Bytes held in memory."""
        return self._size

    @property
    def spilled(self) -> bool:
        """Whether some records went to the exchange."""
        return bool(self._spilled)

    def has(self, task_id: int) -> bool:
        """Whether the task's output is already held."""
        return task_id in self._memory or task_id in self._spilled

    def add(self, task_id: int, records: list[bytes]) -> bool:
        """Keep ``records`` as task ``task_id``'s output, unless it has one already.

        Returns:
            True when kept, False for a duplicate attempt (dropped).

        Raises:
            ConfigurationError: the buffer is full and there is no exchange manager.
        """
        if self._closed:
            raise InvalidArgumentError("deduplication buffer is closed")
        if not 0 <= task_id < self._task_count:
            raise InvalidArgumentError(f"task {task_id} is not a task of the final stage")
        if self.has(task_id):
            return False
        self._memory[task_id] = list(records)
        self._size += sum(len(r) for r in records)
        if self._size > self._capacity:
            self._spill()
        return True

    def _spill(self) -> None:
        if self._manager is None:
            raise ConfigurationError(EXCHANGE_MANAGER_REQUIRED)
        from exchange_store.exchange.handles import ExchangeContext

        if self._exchange is None:
            self._exchange = self._manager.create_exchange(
                ExchangeContext(self._query_id, self._exchange_id),
                output_partition_count=self._task_count,
                preserve_order=True,
            )
        for task_id in sorted(self._memory):
            handle = self._exchange.add_sink(task_id)
            instance = self._exchange.instantiate_sink(handle, 0)
            with self._manager.create_sink(instance) as sink:
                for record in self._memory[task_id]:
                    sink.add(task_id, record)
                    self.spilled_bytes += len(record)
            self._exchange.sink_finished(handle, 0)
            self._spilled.add(task_id)
        self._memory.clear()
        self._size = 0

    def results(self) -> Iterator[bytes]:
        """Every kept record, task partition by task partition, in the order added.

        Raises:
            InvalidArgumentError: a task partition of the final stage has no output.
        """
        missing = [t for t in range(self._task_count) if not self.has(t)]
        if missing:
            raise InvalidArgumentError(f"final stage tasks {missing} reported no output")
        by_partition: dict[int, list[Any]] = {}
        if self._exchange is not None:
            self._exchange.no_more_sinks()
            self._exchange.all_required_sinks_finished()
            for handle in self._exchange.get_source_handles():
                by_partition.setdefault(handle.partition_id, []).append(handle)
        for task_id in range(self._task_count):
            if task_id in self._memory:
                yield from self._memory[task_id]
            elif by_partition.get(task_id):
                source = self._manager.create_source(by_partition[task_id])
                try:
                    source.no_more_source_handles()
                    yield from source
                finally:
                    source.close()

    def close(self) -> None:
        """Drop everything held, in memory and in the exchange."""
        self._closed = True
        self._memory.clear()
        self._size = 0
        if self._exchange is not None:
            with contextlib.suppress(Exception):
                self._exchange.close()
            self._exchange = None
