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
import fnmatch
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, cast, get_args

import tenacity

from exchange_store.errors import ConfigurationError, InvalidArgumentError
from exchange_store.filesystems.base import FileSystemClient, OutputStream
from exchange_store.filesystems.forwarding import ForwardingFileSystemClient

__all__ = [
    "FAULTY_TYPE",
    "FAULT_KINDS",
    "INNER_TYPE_KEY",
    "OPERATIONS",
    "OP_LOG_FILE_KEY",
    "PLAN_KEY",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultyFileSystemClient",
    "FaultySpec",
    "InjectedFaultError",
    "InternalServerError",
    "OpRecord",
    "SlowDownError",
    "faulty_properties",
    "read_op_log_file",
    "register_faulty_filesystem",
]

FaultKind = Literal[
    "transient",
    "permanent",
    "throttle",
    "server-error",
    "enospc",
    "short-write",
    "latency",
    "crash",
    "short-read",
    "bit-flip",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

#: The names of the counted operations.
OPERATIONS: tuple[str, ...] = (
    "open_write",
    "stream.write",
    "stream.close",
    "stream.abort",
    "write_exclusive",
    "write_replace",
    "read",
    "read_range",
    "info",
    "list",
    "delete",
    "delete_recursive",
    "remove_empty_dir",
    "abort_multipart_uploads",
)

T = TypeVar("T")

INNER_TYPE_KEY = "faulty.inner-type"
PLAN_KEY = "faulty.plan"
OP_LOG_FILE_KEY = "faulty.op-log-file"
FAULTY_TYPE = "faulty"


class InjectedFaultError(Exception):
    """Marker base: every error raised by the fault client also inherits this."""


class SlowDownError(InjectedFaultError, ConnectionError):
    """An injected S3 ``503 SlowDown`` (throttling); transient."""


class InternalServerError(InjectedFaultError, ConnectionError):
    """An injected S3 ``500 InternalError``; transient."""


class _InjectedConnectionError(InjectedFaultError, ConnectionError):
    pass


class _InjectedPermissionError(InjectedFaultError, PermissionError):
    pass


class _InjectedOSError(InjectedFaultError, OSError):
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault.

    Attributes:
        kind: What happens (see the module docstring).
        at: Index, among the operations matching the filters, of the first one hit (from 0).
        times: How many consecutive matching operations are hit (throttling for K tries: K).
        ops: Only operations with one of these names count (empty: all).
        path: Only operations on a path matching this ``fnmatch`` glob count (None: all).
        after: Raise (or crash) after the wrapped operation ran instead of before it.
        latency: Seconds slept by a ``latency`` fault.
        fraction: Share of the data a ``short-write`` passes on or a ``short-read`` returns
            (0 to 1); for ``bit-flip``, where in the data the flipped bit is.
    """

    kind: FaultKind
    at: int = 0
    times: int = 1
    ops: tuple[str, ...] = ()
    path: str | None = None
    after: bool = False
    latency: float = 0.0
    fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise InvalidArgumentError(
                f"unknown fault kind {self.kind!r}; allowed: {', '.join(FAULT_KINDS)}"
            )
        if isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0:
            raise InvalidArgumentError(f"fault 'at' must be a non-negative int, got {self.at!r}")
        if isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1:
            raise InvalidArgumentError(f"fault 'times' must be an int >= 1, got {self.times!r}")
        unknown = [op for op in self.ops if op not in OPERATIONS]
        if unknown:
            raise InvalidArgumentError(
                f"unknown operation(s) {unknown!r} in fault; allowed: {', '.join(OPERATIONS)}"
            )
        if not 0.0 <= self.fraction <= 1.0:
            raise InvalidArgumentError(f"fault 'fraction' must be in [0, 1], got {self.fraction}")
        if self.latency < 0:
            raise InvalidArgumentError(f"fault 'latency' must be >= 0, got {self.latency}")
        object.__setattr__(self, "ops", tuple(self.ops))

    def matches(self, op: str, path: str) -> bool:
        """Whether an operation passes this fault's filters."""
        if self.ops and op not in self.ops:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (inverse of ``Fault(**d)`` after :meth:`from_dict`)."""
        out = asdict(self)
        out["ops"] = list(self.ops)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build from :meth:`to_dict` output; unknown fields are refused."""
        allowed = set(cls.__dataclass_fields__)
        extra = set(data) - allowed
        if extra:
            raise InvalidArgumentError(
                f"unknown fault field(s) {sorted(extra)}; allowed: {sorted(allowed)}"
            )
        values = dict(data)
        if "ops" in values:
            values["ops"] = tuple(values["ops"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """An immutable list of faults; the empty plan only counts operations."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))

    @classmethod
    def crash_at(cls, n: int, *, after: bool = False, **filters: Any) -> FaultPlan:
        """SIGKILL the process at operation ``n``."""
        return cls((Fault("crash", at=n, after=after, **filters),))

    @classmethod
    def single(cls, kind: FaultKind, at: int = 0, **kwargs: Any) -> FaultPlan:
        """A plan with one fault."""
        return cls((Fault(kind, at=at, **kwargs),))

    def to_json(self) -> str:
        """Serialise for the ``faulty.plan`` property."""
        return json.dumps([f.to_dict() for f in self.faults], sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """Parse :meth:`to_json` output.

        Raises:
            InvalidArgumentError: not a JSON list of fault objects.
        """
        try:
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"fault plan is not valid JSON: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise InvalidArgumentError("fault plan must be a JSON list of objects")
        return cls(tuple(Fault.from_dict(d) for d in data))


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One counted operation.

    Attributes:
        index: Global 0-based index of the operation.
        op: Operation name (one of :data:`OPERATIONS`).
        path: Full path (URI form of the roots).
        fault: The kind of fault injected there, if any.
    """

    index: int
    op: str
    path: str
    fault: str | None = None


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


def faulty_properties(
    inner_properties: Mapping[str, str], plan: FaultPlan, *, op_log_file: str | None = None
) -> dict[str, str]:
    """The ``etc/filesystem`` properties of a fault client wrapping ``inner_properties``.

    The type is given as this class's ``"module:Class"`` path, so any process can load them
    without registering anything (the short name ``faulty`` needs
    :func:`register_faulty_filesystem`).
    """
    props = {k: v for k, v in inner_properties.items() if k != "fs.client.type"}
    props["fs.client.type"] = f"{__name__}:FaultyFileSystemClient"
    props[INNER_TYPE_KEY] = inner_properties.get("fs.client.type", "local")
    props[PLAN_KEY] = plan.to_json()
    if op_log_file:
        props[OP_LOG_FILE_KEY] = op_log_file
    return props


def register_faulty_filesystem() -> None:
    """Make ``fs.client.type=faulty`` loadable in this process (idempotent)."""
    from exchange_store.filesystems.registry import register_filesystem

    register_filesystem(FAULTY_TYPE, f"{__name__}:FaultyFileSystemClient")


def read_op_log_file(path: str | os.PathLike[str]) -> list[OpRecord]:
    """Read the operations a client appended to ``op_log_file`` (a crashed one included)."""
    out: list[OpRecord] = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        index, op, fault, path_ = line.split("\t", 3)
        out.append(OpRecord(int(index), op, path_, fault or None))
    return out


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
