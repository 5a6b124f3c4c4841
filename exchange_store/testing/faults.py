"""A fault-injecting filesystem client for reliability tests.

:class:`FaultyFileSystemClient` wraps any :class:`~exchange_store.filesystems.base.FileSystemClient`
and delegates its ``_``-primitives to the wrapped client's primitives, so the base class's
confinement, retries and error translation run on top of the injected faults exactly as they do
on top of real backend failures. Streams returned by ``create`` are wrapped too: each stream
``write``, ``close`` and ``abort`` is one operation.

Every primitive call is one *operation* with a global, 0-based index, recorded in
:attr:`FaultyFileSystemClient.op_log`. A sweep first runs the workload with an empty plan to
count the operations, then runs it once per index with a fault planned there.

A :class:`FaultPlan` is a frozen, picklable, JSON-serialisable list of :class:`Fault`:

========================  =====================================================================
kind                      effect at the matching operation
========================  =====================================================================
``transient``             raise ``ConnectionError`` (retried by the base class)
``permanent``             raise ``PermissionError`` (not retried; surfaces as StorageError)
``throttle``              raise :class:`SlowDownError` (S3 503 SlowDown; transient)
``server-error``          raise :class:`InternalServerError` (S3 500 InternalError; transient)
``enospc``                raise ``OSError(ENOSPC)`` (not retried)
``short-write``           pass only part of the data on, then raise ``OSError(EIO)``
``latency``               sleep ``latency`` seconds, then run the operation normally
``crash``                 ``SIGKILL`` the current process
``short-read``            a read returns only the first ``fraction`` of its bytes, silently
``bit-flip``              a read returns its bytes with one bit flipped, silently
========================  =====================================================================

A fault fires on the matching operations ``at``, ``at + 1``, ... ``at + times - 1``, where ``at``
counts (from 0) only the operations that pass its filters (``ops`` names and the ``path`` glob;
no filter means every operation, so ``at`` is then the global index). With ``after=True`` an
error or crash happens *after* the wrapped operation ran (the response was lost), the
interesting case for exclusive commits; a crash planned after an operation happens even when
the operation itself failed.

The client can be built in a child process from plain properties
(:meth:`FaultyFileSystemClient.from_properties`: ``fs.client.type=faulty``,
``faulty.inner-type=local|s3|...``, ``faulty.plan=<json>`` and the inner client's own keys) or
from a pickled :class:`FaultySpec`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import tenacity

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.filesystems.base import FileSystemClient, OutputStream
from exchange_store.filesystems.forwarding import ForwardingFileSystemClient

# The plan's names are this module's public surface too (``X as X`` re-exports them).
from exchange_store.testing.fault_plan import FAULT_KINDS as FAULT_KINDS
from exchange_store.testing.fault_plan import FAULTY_TYPE as FAULTY_TYPE
from exchange_store.testing.fault_plan import INNER_TYPE_KEY as INNER_TYPE_KEY
from exchange_store.testing.fault_plan import OP_LOG_FILE_KEY as OP_LOG_FILE_KEY
from exchange_store.testing.fault_plan import OPERATIONS as OPERATIONS
from exchange_store.testing.fault_plan import PLAN_KEY as PLAN_KEY
from exchange_store.testing.fault_plan import Fault as Fault
from exchange_store.testing.fault_plan import FaultKind as FaultKind
from exchange_store.testing.fault_plan import FaultPlan as FaultPlan
from exchange_store.testing.fault_plan import InjectedFaultError as InjectedFaultError
from exchange_store.testing.fault_plan import InternalServerError as InternalServerError
from exchange_store.testing.fault_plan import OpRecord as OpRecord
from exchange_store.testing.fault_plan import SlowDownError as SlowDownError
from exchange_store.testing.fault_plan import (
    _InjectedConnectionError,
    _InjectedOSError,
    _InjectedPermissionError,
)
from exchange_store.testing.fault_plan import faulty_properties as faulty_properties
from exchange_store.testing.fault_plan import read_op_log_file as read_op_log_file
from exchange_store.testing.fault_plan import (
    register_faulty_filesystem as register_faulty_filesystem,
)

__all__ = ["FaultyFileSystemClient", "FaultySpec"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FaultySpec:
    """Everything needed to rebuild a fault client in another process (picklable).

    Attributes:
        inner_properties: The wrapped client's ``etc/filesystem`` properties.
        roots: Base directories.
        plan: The fault plan.
        no_wait: Retry without back-off (tests).
        op_log_file: Append every operation to this file (survives a SIGKILL).
    """

    inner_properties: Mapping[str, str]
    roots: tuple[str, ...]
    plan: FaultPlan = field(default_factory=FaultPlan)
    no_wait: bool = True
    op_log_file: str | None = None

    def build(self) -> FaultyFileSystemClient:
        """Construct the inner client and wrap it."""
        from exchange_store.filesystems.registry import load_filesystem

        inner = load_filesystem(dict(self.inner_properties), list(self.roots), name="faulty-inner")
        return FaultyFileSystemClient(
            inner, self.plan, op_log_file=self.op_log_file, no_wait=self.no_wait
        )

    def properties(self) -> dict[str, str]:
        """The same client as ``etc/filesystem`` properties (``fs.client.type=faulty``)."""
        return faulty_properties(self.inner_properties, self.plan, op_log_file=self.op_log_file)


def _damage(data: bytes, fault: Fault) -> bytes:
    """What a ``short-read`` or ``bit-flip`` fault makes of the bytes read."""
    if fault.kind == "short-read":
        return data[: int(len(data) * fault.fraction)]
    if not data:
        return data
    bit = int((len(data) * 8 - 1) * fault.fraction)
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


class _FaultyStream:
    """Wraps a wrapped client's stream so that write/close/abort are counted operations."""

    def __init__(self, client: FaultyFileSystemClient, path: str, inner: OutputStream) -> None:
        self._client = client
        self._path = path
        self._inner = inner

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        fault = self._client._before("stream.write", self._path)
        if fault is not None and fault.kind == "short-write":
            view = memoryview(data)
            self._inner.write(view[: int(len(view) * fault.fraction)])
            raise _InjectedOSError(errno.EIO, "injected short write", self._path)
        with self._client._crash_after_failure(fault, self._path):
            n = self._inner.write(data)
        self._client._after(fault, self._path)
        return n

    def close(self) -> None:
        fault = self._client._before("stream.close", self._path)
        with self._client._crash_after_failure(fault, self._path):
            self._inner.close()
        self._client._after(fault, self._path)

    def abort(self) -> None:
        fault = self._client._before("stream.abort", self._path)
        with self._client._crash_after_failure(fault, self._path):
            self._inner.abort()
        self._client._after(fault, self._path)


class FaultyFileSystemClient(ForwardingFileSystemClient):
    """A client that injects planned faults into a wrapped client's primitives.

    Args:
        inner: The wrapped client (its primitives are called; its own retries are not used).
        plan: The faults to inject.
        max_retries: Retries of this client (default: the wrapped client's).
        op_log_file: Also append each operation to this file (tab-separated index, op, fault,
            path; written before any fault fires, so a SIGKILLed process leaves its log).
        no_wait: Retry without back-off (tests).

    Attributes:
        inner: The wrapped client.
        plan: The plan in force.
        op_log: Every counted operation so far, in order.
        injected: How many faults were injected (latency included).
    """

    scheme = "faulty"

    def __init__(
        self,
        inner: FileSystemClient,
        plan: FaultPlan | None = None,
        *,
        max_retries: int | None = None,
        op_log_file: str | None = None,
        no_wait: bool = False,
    ) -> None:
        super().__init__(inner, max_retries=max_retries)
        self.plan = plan if plan is not None else FaultPlan()
        self.op_log: list[OpRecord] = []
        self.injected = 0
        self._matched = [0] * len(self.plan.faults)
        self._lock = threading.Lock()
        self.op_log_file = op_log_file
        if no_wait:
            self.retry_wait = tenacity.wait_none()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_properties(
        cls, properties: Mapping[str, str], roots: Sequence[str], *, source: str = "<properties>"
    ) -> FaultyFileSystemClient:
        """Build from ``fs.client.type=faulty`` properties (see :func:`faulty_properties`).

        Keys: ``faulty.inner-type`` (the wrapped client's type), ``faulty.plan`` (JSON of
        :meth:`FaultPlan.to_json`), optional ``faulty.op-log-file``; the rest go to the wrapped
        client. Retries of the fault client never wait (it is a test tool).

        Raises:
            ConfigurationError: ``faulty.inner-type`` missing or ``faulty.plan`` invalid; names
                ``source`` and the key.
        """
        from exchange_store.filesystems.registry import load_filesystem

        props = dict(properties)
        inner_type = props.pop(INNER_TYPE_KEY, None)
        if not inner_type:
            raise ConfigurationError(f"{source}: missing key '{INNER_TYPE_KEY}' (e.g. local, s3)")
        if inner_type == "faulty":
            raise ConfigurationError(f"{source}: '{INNER_TYPE_KEY}' may not be 'faulty'")
        try:
            plan = FaultPlan.from_json(props.pop(PLAN_KEY, "[]"))
        except InvalidArgumentError as exc:
            raise ConfigurationError(f"{source}: bad value for key '{PLAN_KEY}': {exc}") from exc
        op_log_file = props.pop(OP_LOG_FILE_KEY, None) or None
        props["fs.client.type"] = inner_type
        inner = load_filesystem(props, roots, source=source, name="faulty-inner")
        return cls(inner, plan, op_log_file=op_log_file, no_wait=True)

    # ------------------------------------------------------------------ bookkeeping

    @property
    def op_count(self) -> int:
        """Number of operations counted so far."""
        return len(self.op_log)

    def injected_at(self) -> list[OpRecord]:
        """The operations where a fault was injected."""
        with self._lock:
            return [r for r in self.op_log if r.fault is not None]

    def _before(self, op: str, path: str) -> Fault | None:
        """Count one operation; run a fault planned before it; return one planned after it."""
        chosen: Fault | None = None
        with self._lock:
            for i, fault in enumerate(self.plan.faults):
                if not fault.matches(op, path):
                    continue
                k = self._matched[i]
                self._matched[i] = k + 1
                if chosen is None and fault.at <= k < fault.at + fault.times:
                    chosen = fault
            record = OpRecord(len(self.op_log), op, path, chosen.kind if chosen else None)
            self.op_log.append(record)
            if chosen is not None:
                self.injected += 1
            if self.op_log_file is not None:
                with open(self.op_log_file, "a", encoding="utf-8") as f:
                    f.write(f"{record.index}\t{op}\t{record.fault or ''}\t{path}\n")
        if chosen is None:
            return None
        if chosen.kind == "latency":
            time.sleep(chosen.latency)
            return None
        if chosen.kind in ("short-write", "short-read", "bit-flip") or chosen.after:
            return chosen
        self._fire(chosen, op, path)
        return None  # pragma: no cover - _fire always raises or kills

    def _after(self, fault: Fault | None, path: str) -> None:
        if fault is not None:
            self._fire(fault, "after", path)

    @contextlib.contextmanager
    def _crash_after_failure(self, fault: Fault | None, path: str) -> Iterator[None]:
        """A crash planned after an operation happens even when the operation failed."""
        try:
            yield
        except BaseException:
            if fault is not None and fault.kind == "crash":
                self._fire(fault, "after", path)
            raise

    @staticmethod
    def _fire(fault: Fault, op: str, path: str) -> None:
        what = f"injected {fault.kind} at {op} {path}"
        if fault.kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # pragma: no cover - SIGKILL cannot be caught
        if fault.kind == "transient":
            raise _InjectedConnectionError(what)
        if fault.kind == "permanent":
            raise _InjectedPermissionError(errno.EACCES, what, path)
        if fault.kind == "throttle":
            raise SlowDownError(f"503 SlowDown: Please reduce your request rate ({what})")
        if fault.kind == "server-error":
            raise InternalServerError(
                f"500 InternalError: We encountered an internal error ({what})"
            )
        if fault.kind == "enospc":
            raise _InjectedOSError(errno.ENOSPC, f"No space left on device ({what})", path)
        # short-write on a whole-file primitive that was planned "after": data fully written.
        raise _InjectedOSError(errno.EIO, what, path)

    def _forward(
        self, op: str, native: str, call: Callable[..., T], data: bytes | None = None
    ) -> T:
        path = self._uri(native)
        fault = self._before(op, path)
        if fault is not None and fault.kind == "short-write" and data is not None:
            # A torn whole-file write: only a prefix lands (a backend that lost atomicity).
            call(data[: int(len(data) * fault.fraction)])
            raise _InjectedOSError(errno.EIO, f"injected short write at {op} {path}", path)
        with self._crash_after_failure(fault, path):
            result = call(data) if data is not None else call()
        if fault is not None and fault.kind in ("short-read", "bit-flip"):
            if isinstance(result, bytes | bytearray):
                return cast("T", _damage(bytes(result), fault))
            return result
        self._after(fault, path)
        return result

    def _wrap_stream(self, native: str, stream: OutputStream) -> OutputStream:
        return _FaultyStream(self, self._uri(native), stream)

    def __repr__(self) -> str:
        return f"FaultyFileSystemClient({self.inner!r}, faults={len(self.plan.faults)})"
