"""The plan of a fault-injecting client: which faults, at which operations, and its log.

See :mod:`exchange_store.testing.faults` for the client and the fault kinds. Everything here is
plain data: frozen, picklable and JSON-serialisable, so a plan crosses process boundaries in
``etc/filesystem`` properties.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from exchange_store.errors import InvalidArgumentError

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

INNER_TYPE_KEY = "faulty.inner-type"
PLAN_KEY = "faulty.plan"
OP_LOG_FILE_KEY = "faulty.op-log-file"
FAULTY_TYPE = "faulty"
CLIENT_CLASS = "exchange_store.testing.faults:FaultyFileSystemClient"
"""The client's ``module:Class`` path: loadable as ``fs.client.type`` in any process."""


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


def faulty_properties(
    inner_properties: Mapping[str, str], plan: FaultPlan, *, op_log_file: str | None = None
) -> dict[str, str]:
    """The ``etc/filesystem`` properties of a fault client wrapping ``inner_properties``.

    The type is given as this class's ``"module:Class"`` path, so any process can load them
    without registering anything (the short name ``faulty`` needs
    :func:`register_faulty_filesystem`).
    """
    props = {k: v for k, v in inner_properties.items() if k != "fs.client.type"}
    props["fs.client.type"] = CLIENT_CLASS
    props[INNER_TYPE_KEY] = inner_properties.get("fs.client.type", "local")
    props[PLAN_KEY] = plan.to_json()
    if op_log_file:
        props[OP_LOG_FILE_KEY] = op_log_file
    return props


def register_faulty_filesystem() -> None:
    """Make ``fs.client.type=faulty`` loadable in this process (idempotent)."""
    from exchange_store.filesystems.registry import register_filesystem

    register_filesystem(FAULTY_TYPE, CLIENT_CLASS)


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
