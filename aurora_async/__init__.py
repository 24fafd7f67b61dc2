"""aurora_async: keep asyncio applications on Amazon Aurora and RDS Multi-AZ clusters running through
failovers, switchovers and network faults, on top of asyncpg and aiomysql.

The local Aurora simulator used by the test suite lives in :mod:`aurora_async.testing`.
"""

from __future__ import annotations

from . import data_api
from ._connect import RawConnector, connect, connect_raw, raw_connector
from ._events import (
    Event,
    EventStream,
    FailoverFailed,
    FailoverStarted,
    FailoverSucceeded,
    HostDown,
    HostUp,
    IamTokenGenerated,
    PoolConnectionRetired,
    SecretFetched,
    TopologyRefreshed,
    WriterChanged,
    WriterSearchFinished,
)
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
from ._health import Health
from ._observability import events, health
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
    "Event",
    "EventStream",
    "FailoverError",
    "FailoverFailed",
    "FailoverFailedError",
    "FailoverMode",
    "FailoverStarted",
    "FailoverSucceeded",
    "FailoverSuccessError",
    "Health",
    "HostDown",
    "HostUp",
    "IamAuthError",
    "IamTokenGenerated",
    "Instance",
    "Options",
    "PoolConnectionRetired",
    "RawConnector",
    "ReadWriteSplittingError",
    "RetryState",
    "Role",
    "SecretFetched",
    "SecretsManagerError",
    "Topology",
    "TopologyRefreshed",
    "TransactionResolutionUnknownError",
    "WriterChanged",
    "WriterSearchFinished",
    "__version__",
    "attempts_of",
    "connect",
    "connect_raw",
    "create_pool",
    "data_api",
    "events",
    "health",
    "raw_connector",
    "retry_on_failover",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj, _registry
