"""S3 error codes mapped to builtin exceptions (one table, used by ``S3FileSystemClient``).

s3fs already turns ``botocore`` ``ClientError`` exceptions into builtins, but coarsely (a 503
becomes ``OSError(EBUSY)``), so we look at the original error code, kept as the ``__cause__``,
and map it here. Transient codes map to :class:`ConnectionError` / :class:`TimeoutError`,
which the base client retries and reports as ``TransientStorageError`` naming the path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ERROR_CODE_TO_EXCEPTION",
    "HTTP_STATUS_TO_EXCEPTION",
    "classify_s3_error",
    "s3_error_code",
]

#: S3 error code -> builtin exception type.
ERROR_CODE_TO_EXCEPTION: Mapping[str, type[Exception]] = {
    # missing
    "NoSuchKey": FileNotFoundError,
    "NoSuchBucket": FileNotFoundError,
    "NoSuchUpload": FileNotFoundError,
    "NotFound": FileNotFoundError,
    "404": FileNotFoundError,
    # denied
    "AccessDenied": PermissionError,
    "AllAccessDisabled": PermissionError,
    "InvalidAccessKeyId": PermissionError,
    "SignatureDoesNotMatch": PermissionError,
    "ExpiredToken": PermissionError,
    "InvalidToken": PermissionError,
    "InvalidObjectState": PermissionError,
    "403": PermissionError,
    # conditional writes: the object exists (If-None-Match: *)
    "PreconditionFailed": FileExistsError,
    "412": FileExistsError,
    # transient: throttling, server errors, concurrent conditional writes
    "ConditionalRequestConflict": ConnectionError,
    "OperationAborted": ConnectionError,
    "SlowDown": ConnectionError,
    "Throttling": ConnectionError,
    "ThrottlingException": ConnectionError,
    "RequestLimitExceeded": ConnectionError,
    "ServiceUnavailable": ConnectionError,
    "InternalError": ConnectionError,
    "500": ConnectionError,
    "502": ConnectionError,
    "503": ConnectionError,
    "504": ConnectionError,
    "RequestTimeout": TimeoutError,
    "RequestTimeoutException": TimeoutError,
}

#: HTTP status -> builtin, for codes missing from the table.
HTTP_STATUS_TO_EXCEPTION: Mapping[int, type[Exception]] = {
    403: PermissionError,
    404: FileNotFoundError,
    408: TimeoutError,
    412: FileExistsError,
    429: ConnectionError,
    500: ConnectionError,
    502: ConnectionError,
    503: ConnectionError,
    504: ConnectionError,
}

# botocore / aiohttp / s3fs exception class names meaning "the network failed".
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "HTTPClientError",
        "ResponseParserError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "FSTimeoutError",
    }
)


def _client_error_response(exc: BaseException) -> Mapping[str, Any] | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and "Error" in response:
        return response
    return None


def _chain(exc: BaseException, *, follow_context: bool) -> Iterator[BaseException]:
    """``exc`` and its causes (and, if asked, implicit contexts), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (current.__context__ if follow_context else None)


def s3_error_code(exc: BaseException) -> str | None:
    """The S3 error code of ``exc`` or of the ``ClientError`` it was raised from."""
    for current in _chain(exc, follow_context=True):
        response = _client_error_response(current)
        if response is not None:
            code = response.get("Error", {}).get("Code")
            return str(code) if code else None
    return None


def classify_s3_error(exc: BaseException) -> BaseException:
    """Map an exception from s3fs / botocore to the matching builtin.

    The original S3 error (a ``botocore`` ``ClientError``) may be ``exc`` itself or the cause
    of the builtin s3fs raised. Anything not recognised is returned unchanged.
    """
    for current in _chain(exc, follow_context=False):
        response = _client_error_response(current)
        if response is not None:
            error = response.get("Error", {})
            code = str(error.get("Code") or "")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            cls = ERROR_CODE_TO_EXCEPTION.get(code)
            if cls is None and isinstance(status, int):
                cls = HTTP_STATUS_TO_EXCEPTION.get(status)
            if cls is None:
                return exc
            message = error.get("Message") or ""
            detail = f"{code}: {message}" if message else code or str(current)
            mapped = cls(detail)
            mapped.__cause__ = current
            return mapped
        if type(current).__name__ in _TRANSIENT_CLASS_NAMES:
            mapped = ConnectionError(f"{type(current).__name__}: {current}")
            mapped.__cause__ = current
            return mapped
    return exc
