"""The failover errors as a PostgreSQL connection raises them.

Each is also an asyncpg ``ConnectionDoesNotExistError`` (a ``PostgresConnectionError``): what asyncpg
raises when the connection under a call is lost. Code written for asyncpg (``except
asyncpg.PostgresConnectionError``, ``except asyncpg.ConnectionDoesNotExistError``) thus handles a
failover as it handled a lost connection, while ``except aurora_async.FailoverSuccessError`` and the
rest of aurora_async's tree work as documented.
"""

from __future__ import annotations

from asyncpg.exceptions import ConnectionDoesNotExistError

from .. import _exceptions as base


class FailoverSuccessError(base.FailoverSuccessError, ConnectionDoesNotExistError):
    """:class:`aurora_async.FailoverSuccessError`, also asyncpg's ``ConnectionDoesNotExistError``."""


class TransactionResolutionUnknownError(base.TransactionResolutionUnknownError, ConnectionDoesNotExistError):
    """:class:`aurora_async.TransactionResolutionUnknownError`, also asyncpg's
    ``ConnectionDoesNotExistError``."""


class FailoverFailedError(base.FailoverFailedError, ConnectionDoesNotExistError):
    """:class:`aurora_async.FailoverFailedError`, also asyncpg's ``ConnectionDoesNotExistError``."""


FAILOVER_ERRORS: dict[type[base.FailoverError], type[base.FailoverError]] = {
    base.FailoverSuccessError: FailoverSuccessError,
    base.TransactionResolutionUnknownError: TransactionResolutionUnknownError,
    base.FailoverFailedError: FailoverFailedError,
}
