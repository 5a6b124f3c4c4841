"""The single error tree of exchange-store.

Every error raised by the package inherits :class:`ExchangeStoreError`. Domain errors also
inherit the matching builtin, so ``except FileNotFoundError`` keeps working for callers that
do not know this package.
"""

from __future__ import annotations

__all__ = [
    "BackendNotInstalledError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "ConfigurationError",
    "ExchangeStoreError",
    "IntegrityError",
    "InvalidArgumentError",
    "StorageError",
    "StorageFileNotFoundError",
    "TransientStorageError",
    "UserError",
]


class ExchangeStoreError(Exception):
    """Root of every error raised by exchange-store."""


class ConfigurationError(ExchangeStoreError, ValueError):
    """A configuration file, key or value is missing or wrong; the message names which."""


class InvalidArgumentError(ExchangeStoreError, ValueError):
    """An argument to the public API is out of its allowed range or of the wrong form."""


class IntegrityError(ExchangeStoreError):
    """Stored bytes were changed, truncated, moved or read with the wrong key.

    Data that fails a check is never returned; this error is raised instead.
    """


class StorageError(ExchangeStoreError, OSError):
    """The filesystem failed (after retries). The message names the full URI at fault.

    Raised as ``StorageError(errno, message)`` with ``filename`` set to the URI; ``str()`` is the
    message alone (which already names the URI), not OSError's ``[Errno n] ...: 'uri'`` form.
    """

    def __str__(self) -> str:
        if isinstance(self.strerror, str) and self.strerror:
            return self.strerror
        return super().__str__()


class TransientStorageError(StorageError):
    """A storage failure that may succeed when tried again (throttling, 5xx, timeouts)."""


class StorageFileNotFoundError(StorageError, FileNotFoundError):
    """A path that should exist does not."""


class CommitConflictError(StorageError, FileExistsError):
    """An exclusive create found the path already present (another attempt won)."""


class CommitStateUnknownError(StorageError):
    """A commit was sent but its outcome is unknown; nothing may be deleted on this basis."""


class BackendNotInstalledError(ExchangeStoreError, ImportError):
    """An optional backend's package is missing; the message gives the pip extra to install."""


class UserError(ExchangeStoreError):
    """Raised by task code for an error of the query itself; never retried by the scheduler."""
