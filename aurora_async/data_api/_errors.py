"""The errors of the Data API client, and the one place that turns an AWS error into one of them.

::

    AuroraError
    └── DataApiError                        any Data API failure; ``code`` is the AWS error code
        ├── DatabaseError                   the SQL failed: ``sqlstate``, ``error_code``, ``position``
        ├── ParameterError(…, ValueError)   a parameter cannot be sent (type, name); nothing was sent
        ├── StatementTimeoutError           the statement ran past the Data API's 45 s limit
        ├── TransactionNotFoundError        the transaction expired (3 min idle) or was aborted
        ├── DatabaseResumingError           the paused cluster did not wake up before ``retry_timeout``
        ├── ResultTooLargeError             over the 1 MiB response or the 64 KB row limit
        ├── UnsupportedResultError          a result column of a type the Data API cannot return
        ├── DataApiNotEnabledError          no cluster with the Data API enabled has this resource ARN
        └── RequestOutcomeUnknownError      no usable answer: the statement may or may not have run

Messages never contain parameter values or secrets.
"""

from __future__ import annotations

import re
from typing import Any

from .._exceptions import AuroraError


class DataApiError(AuroraError):
    """A Data API request failed. ``code`` is the AWS error code (``BadRequestException``,
    ``AccessDeniedException``, ...) when AWS sent one, ``status`` the HTTP status."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class DatabaseError(DataApiError):
    """The database refused the statement (syntax, constraint, permission, ...). ``sqlstate`` (both
    engines, when the Data API reports it), ``error_code`` (MySQL's error number) and ``position``
    (PostgreSQL: 1-based character position in the SQL) are parsed from the message."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.sqlstate: str | None = _group(r"SQLState: ?(\w+)", message)
        number = _group(r"Error code: ?(\d+)", message)
        self.error_code: int | None = int(number) if number is not None else None
        position = _group(r"Position: ?(\d+)", message)
        self.position: int | None = int(position) if position is not None else None


class ParameterError(DataApiError, ValueError):
    """A parameter cannot be sent: a missing or unknown ``:name``, a value of a type the Data API has
    no representation for. Raised before any request."""


class StatementTimeoutError(DataApiError):
    """The statement did not finish within the Data API's limit (45 s). Without
    ``continue_after_timeout`` it was cancelled (inside a transaction the transaction is gone); with it,
    it keeps running on the server and commits on its own. ``db_connection_id``: the server session."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        db_connection_id: Any = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.db_connection_id = db_connection_id


class TransactionNotFoundError(DataApiError):
    """The transaction is gone: it was idle for more than 3 minutes, exceeded 24 hours, was ended by an
    earlier error or timeout, or the id is unknown. Its changes were rolled back; start it again."""


class DatabaseResumingError(DataApiError):
    """The auto-paused cluster kept answering ``DatabaseResumingException`` (or "Communications link
    failure") until ``retry_timeout`` ran out. Nothing was executed."""


class ResultTooLargeError(DataApiError):
    """The result does not fit a Data API response (1 MiB, 64 KB per row). ``fetch`` pages PostgreSQL
    SELECTs by itself; the message says what to do otherwise."""


class UnsupportedResultError(DataApiError):
    """A result column has a type the Data API cannot return (PostgreSQL: geometric types, money,
    interval, multi-dimensional arrays ...). Cast it, for example ``col::text``."""


class DataApiNotEnabledError(DataApiError):
    """``HttpEndpointNotEnabledException``: the Data API (the cluster's HTTP endpoint) is not enabled
    for ``resource_arn``, or no cluster has that ARN in this account and region (a typo, a deleted or
    renamed cluster), or the cluster's engine version does not support the Data API. Nothing was run;
    sending it again does not help."""


class RequestOutcomeUnknownError(DataApiError):
    """The request got no usable answer (a connection reset or closed after sending, a read timeout, a
    5xx) after it may have reached the database: it may or may not have run (or committed). It is sent
    again only when the caller allowed it (``idempotent=True``, or ``resend_reads=True`` for a statement
    that only reads, outside a transaction); this error then means ``retry_timeout`` ran out. Check,
    then re-run it if needed."""


def _group(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


RESPONSE_TOO_LARGE = "Database returned more than the allowed response size limit"
ROW_TOO_LARGE = "Packet for query is too large"
LINK_FAILURE = "Communications link failure"

_BY_CODE: dict[str, type[DataApiError]] = {
    "DatabaseErrorException": DatabaseError,
    "StatementTimeoutException": StatementTimeoutError,
    "TransactionNotFoundException": TransactionNotFoundError,
    "NotFoundException": TransactionNotFoundError,  # Commit/Rollback of an unknown transaction
    "DatabaseResumingException": DatabaseResumingError,
    "UnsupportedResultException": UnsupportedResultError,
    "HttpEndpointNotEnabledException": DataApiNotEnabledError,
}
_NOT_ENABLED_HINT = (
    "check resource_arn (the cluster's ARN, in the region and account of the credentials), and that the "
    "Data API is enabled on the cluster: aws rds enable-http-endpoint --resource-arn <arn>"
)


def from_client_error(exc: BaseException) -> DataApiError:
    """The :class:`DataApiError` for a botocore ``ClientError`` (use ``raise ... from exc``)."""
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = error.get("Code") or type(exc).__name__
    message = error.get("Message") or str(exc)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if RESPONSE_TOO_LARGE in message or ROW_TOO_LARGE in message:
        return ResultTooLargeError(_too_large_hint(message), code=code, status=status)
    if code == "BadRequestException" and re.search(r"Transaction .* (is not|isn't) found", message):
        return TransactionNotFoundError(message, code=code, status=status)
    kind = _BY_CODE.get(code, DataApiError)
    if kind is StatementTimeoutError:
        return StatementTimeoutError(
            message, code=code, status=status, db_connection_id=response.get("dbConnectionId")
        )
    if kind is DataApiNotEnabledError:
        return DataApiNotEnabledError(f"{message} ({_NOT_ENABLED_HINT})", code=code, status=status)
    if kind is DataApiError and code == "BadRequestException" and _looks_like_sql_error(message):
        kind = DatabaseError  # the deprecated catch-all of older clusters
    return kind(message, code=code, status=status)


def _looks_like_sql_error(message: str) -> bool:
    return message.startswith("ERROR:") or "SQLState" in message or "Error code:" in message


def _too_large_hint(message: str) -> str:
    if ROW_TOO_LARGE in message:
        return (
            f"{message} (a single row is over the Data API's 64 KB limit: select fewer or smaller columns, "
            "for example with substring())"
        )
    return (
        f"{message} (over the Data API's 1 MiB response limit: page the query, e.g. ORDER BY a key with "
        "LIMIT :n and WHERE key > :last, or use cursor() on PostgreSQL)"
    )


def is_resuming(exc: DataApiError) -> bool:
    """A paused cluster waking up: the request was not executed, and may be sent again."""
    return isinstance(exc, DatabaseResumingError) or (
        exc.code == "BadRequestException" and LINK_FAILURE in exc.message
    )
