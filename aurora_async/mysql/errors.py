"""The failover errors as a MySQL connection raises them.

Each is also a ``pymysql.err.OperationalError`` (what aiomysql raises when the connection under a call
is lost), with the client error number first in ``args`` as pymysql's errors have it: 2013 ("lost
connection to server during query") after a failover, 2003 ("can't connect") when it failed. Code
written for aiomysql (``except OperationalError``, a retry on ``e.args[0] in (2006, 2013)``) thus
handles a failover as it handled a lost connection, while ``except aurora_async.FailoverSuccessError``
and the rest of aurora_async's tree work as documented.
"""

from __future__ import annotations

from typing import Any

from pymysql.err import OperationalError

from .. import _exceptions as base

CR_CONN_HOST_ERROR = 2003  # can't connect to the server
CR_SERVER_LOST = 2013  # lost connection to the server during query


class FailoverSuccessError(base.FailoverSuccessError, OperationalError):  # type: ignore[misc]
    """:class:`aurora_async.FailoverSuccessError`, also pymysql's ``OperationalError`` (2013)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.args = (CR_SERVER_LOST, message)


class TransactionResolutionUnknownError(base.TransactionResolutionUnknownError, OperationalError):  # type: ignore[misc]
    """:class:`aurora_async.TransactionResolutionUnknownError`, also pymysql's ``OperationalError``
    (2013)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (CR_SERVER_LOST, message)


class FailoverFailedError(base.FailoverFailedError, OperationalError):  # type: ignore[misc]
    """:class:`aurora_async.FailoverFailedError`, also pymysql's ``OperationalError`` (2003)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (CR_CONN_HOST_ERROR, message)


FAILOVER_ERRORS: dict[type[base.FailoverError], type[base.FailoverError]] = {
    base.FailoverSuccessError: FailoverSuccessError,
    base.TransactionResolutionUnknownError: TransactionResolutionUnknownError,
    base.FailoverFailedError: FailoverFailedError,
}
