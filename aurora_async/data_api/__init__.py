"""The RDS Data API: SQL over HTTPS, with no database connection to keep.

For Aurora Serverless, and for workers outside the VPC (Lambda), that reach the database through the
Data API rather than a driver. ``connect()`` returns a :class:`DataApiConnection` with the asyncpg call
style (``execute``, ``fetch``, ``fetchrow``, ``fetchval``, ``executemany``, ``transaction()``) and
named ``:name`` parameters from a mapping::

    import aurora_async

    async with aurora_async.data_api.connect(
        resource_arn="arn:aws:rds:us-east-1:123456789012:cluster:orders",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-app-AbCdEf",
        database="orders",
    ) as conn:
        async with conn.transaction():
            await conn.execute("INSERT INTO orders (id, body) VALUES (:id, :body)", {"id": 7, "body": {}})
        row = await conn.fetchrow("SELECT * FROM orders WHERE id = :id", {"id": 7})

Types both ways, results decoded with the column metadata, a paused cluster waited for, large
PostgreSQL results paged: see :mod:`aurora_async.data_api._values` and :func:`connect`. Needs the
``aws`` extra (aioboto3). ``aurora_async.testing.DataApiEmulator`` serves the same protocol on loopback
over the simulator's real databases.
"""

from __future__ import annotations

from ._connect import connect
from ._connection import DataApiConnection, ExecuteResult
from ._errors import (
    DataApiError,
    DataApiNotEnabledError,
    DatabaseError,
    DatabaseResumingError,
    ParameterError,
    RequestOutcomeUnknownError,
    ResultTooLargeError,
    StatementTimeoutError,
    TransactionNotFoundError,
    UnsupportedResultError,
)
from ._paging import DataApiCursor
from ._records import Record
from ._transaction import DataApiTransaction
from ._values import Json

__all__ = [
    "DataApiConnection",
    "DataApiCursor",
    "DataApiError",
    "DataApiNotEnabledError",
    "DataApiTransaction",
    "DatabaseError",
    "DatabaseResumingError",
    "ExecuteResult",
    "Json",
    "ParameterError",
    "Record",
    "RequestOutcomeUnknownError",
    "ResultTooLargeError",
    "StatementTimeoutError",
    "TransactionNotFoundError",
    "UnsupportedResultError",
    "connect",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
