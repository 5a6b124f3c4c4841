"""Leases: small records that say "my owner is alive", kept fresh in storage.

A live exchange (or a pending snapshot) writes a lease record beside its data and rewrites it
every ``ttl / 3`` seconds from a daemon thread. The admin ``gc`` treats data whose lease has
expired (or that has no lease and is old) as abandoned by a crashed owner. ``close()`` stops
the refresh and deletes the record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from exchange_store.errors import IntegrityError, StorageFileNotFoundError
from exchange_store.filesystems.base import FileSystemClient

__all__ = ["LEASE_NAME", "Lease", "LeaseRecord", "read_lease"]

LEASE_NAME = "_lease"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What a lease file says.

    Attributes:
        owner: Who holds it (``exchange q1/stage-1``).
        host: Host name of the owning process.
        pid: Process id of the owner.
        created_at: When the lease was first written (epoch seconds).
        renewed_at: When it was last refreshed.
        ttl: Seconds after ``renewed_at`` for which the owner counts as alive.
    """

    owner: str
    host: str
    pid: int
    created_at: float
    renewed_at: float
    ttl: float

    @property
    def expires_at(self) -> float:
        """When the owner stops counting as alive unless it refreshes."""
        return self.renewed_at + self.ttl

    def expired(self, now: float | None = None) -> bool:
        """Whether the lease has run out at ``now`` (default: the current time)."""
        return (time.time() if now is None else now) >= self.expires_at

    def encode(self) -> bytes:
        """The JSON bytes stored in the lease file."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, path: str) -> LeaseRecord:
        """Parse a lease file's bytes.

        Raises:
            IntegrityError: the bytes are not a lease record; names ``path``.
        """
        try:
            raw = json.loads(data)
            return cls(
                owner=str(raw["owner"]),
                host=str(raw["host"]),
                pid=int(raw["pid"]),
                created_at=float(raw["created_at"]),
                renewed_at=float(raw["renewed_at"]),
                ttl=float(raw["ttl"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{path}: not a lease record ({exc})") from None


def read_lease(client: FileSystemClient, path: str) -> LeaseRecord | None:
    """Read the lease at ``path``; None when there is none."""
    try:
        data = client.read_file(path)
    except StorageFileNotFoundError:
        return None
    return LeaseRecord.decode(data, path)


class Lease:
    """Keeps a lease record fresh at each of ``paths`` while its owner lives.

    Args:
        client: Where the records are written.
        paths: Full paths of the lease files (one per base directory, say).
        owner: Who holds the lease, for humans reading ``ls``.
        ttl: Seconds a record stays valid after each refresh.
        clock: Time source (tests inject one).
    """

    def __init__(
        self,
        client: FileSystemClient,
        paths: Sequence[str],
        owner: str,
        ttl: float = 60.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("lease ttl must be positive")
        self._client = client
        self._paths = tuple(paths)
        self._owner = owner
        self._ttl = ttl
        self._clock = clock
        self._created = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def paths(self) -> tuple[str, ...]:
        """Where the records are."""
        return self._paths

    def record(self) -> LeaseRecord:
        """The record as it would be written now."""
        return LeaseRecord(
            owner=self._owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            created_at=self._created,
            renewed_at=self._clock(),
            ttl=self._ttl,
        )

    def renew(self) -> None:
        """Write the record(s) now."""
        with self._lock:
            if self._stop.is_set():
                return
            data = self.record().encode()
            for path in self._paths:
                self._client.write_file(path, data)

    def start(self) -> Lease:
        """Write the record(s) and start refreshing every ``ttl / 3`` seconds."""
        self.renew()
        self._thread = threading.Thread(target=self._run, name=f"lease:{self._owner}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self._ttl / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception as exc:  # keep trying: a missed refresh is not fatal yet
                _log.warning("lease refresh failed for %s: %s", self._owner, exc)

    def close(self) -> None:
        """Stop refreshing and delete the record(s). Idempotent."""
        with self._lock:
            already = self._stop.is_set()
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if not already:
            for path in self._paths:
                self._client.delete(path)

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
