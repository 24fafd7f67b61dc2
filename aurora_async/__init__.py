"""aurora_async: keep asyncio applications on Amazon Aurora and RDS Multi-AZ clusters running through
failovers, switchovers and network faults, on top of asyncpg and aiomysql.

The local Aurora simulator used by the test suite lives in :mod:`aurora_async.testing`.
"""

from __future__ import annotations

from . import data_api
from ._connect import RawConnector, connect, connect_raw, raw_connector
from ._exceptions import (
    AuroraError,
    ConfigurationError,
    CredentialsError,
    CustomEndpointError,
    FailoverError,
    FailoverFailedError,
    FailoverSuccessError,
    IamAuthError,
    ReadWriteSplittingError,
    SecretsManagerError,
    TransactionResolutionUnknownError,
)
from ._options import FailoverMode, Options
from ._pool import AuroraPool, create_pool
from ._registry import registry as _registry
from ._retry import RetryState, attempts_of, retry_on_failover
from ._topology import Instance, Role, Topology
from ._version import __version__
from .mysql.connection import AuroraMySQLConnection, AuroraMySQLCursor
from .postgresql.connection import AuroraConnection, AuroraTransaction

__all__ = [
    "AuroraConnection",
    "AuroraError",
    "AuroraMySQLConnection",
    "AuroraMySQLCursor",
    "AuroraPool",
    "AuroraTransaction",
    "ConfigurationError",
    "CredentialsError",
    "CustomEndpointError",
    "FailoverError",
    "FailoverFailedError",
    "FailoverMode",
    "FailoverSuccessError",
    "IamAuthError",
    "Instance",
    "Options",
    "RawConnector",
    "ReadWriteSplittingError",
    "RetryState",
    "Role",
    "SecretsManagerError",
    "Topology",
    "TransactionResolutionUnknownError",
    "__version__",
    "attempts_of",
    "connect",
    "connect_raw",
    "create_pool",
    "data_api",
    "raw_connector",
    "retry_on_failover",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj, _registry
