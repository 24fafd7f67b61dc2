"""Test tools: a local Aurora-like cluster of real database servers with fault injection.

``AuroraSimulator`` starts real PostgreSQL servers (a writer and streaming replicas), or MariaDB
servers with GTID replication for ``engine="mysql"``, on loopback addresses, each behind a fault proxy,
with Aurora's catalog faked so that the real Aurora SQL runs unchanged. It can fail over, switch over,
crash, black-hole, slow down, reboot, add and remove instances, and it reproduces stale cluster-endpoint
DNS. The pytest plugin (installed with the package) provides ``aurora_postgres`` and ``aurora_mysql``
fixtures; ``python -m aurora_async.testing up`` starts a cluster from the shell. ``MotoServer`` (moto
on loopback) and ``RehearsalSession`` (IAM tokens that become the simulated database user's password)
rehearse the ``iam`` and ``aws_secrets_manager`` plugins. ``DataApiEmulator`` serves the RDS Data API
(``rds-data``, for ``aurora_async.data_api`` and aioboto3) on loopback over a simulator's real databases,
with its errors, limits, timeouts, transactions and auto-pause. ``in_memory_telemetry()`` installs the
OpenTelemetry SDK with in-memory reader and exporter, to check what ``enable_telemetry=True`` records.
"""

from __future__ import annotations

from ._aws import DUMMY_AWS_ENV, MotoServer, RehearsalSession
from ._catalog import BlueGreenHost, TopologyMode
from ._errors import SimulatorError
from ._telemetry import in_memory_telemetry
from .data_api._emulator import DataApiEmulator
from .mysql._iam import IamLoginAttempt
from .simulator._blue_green import BlueGreenDeployment, GreenCluster
from .simulator._failover import FailoverDelays
from .simulator._global_database import GlobalDatabase
from .simulator._instances import InstanceState
from .simulator._simulator import AuroraSimulator
from .simulator._timeline import FailoverReport, TimelineEvent

__all__ = [
    "DUMMY_AWS_ENV",
    "AuroraSimulator",
    "BlueGreenDeployment",
    "BlueGreenHost",
    "DataApiEmulator",
    "FailoverDelays",
    "FailoverReport",
    "GlobalDatabase",
    "GreenCluster",
    "IamLoginAttempt",
    "InstanceState",
    "MotoServer",
    "RehearsalSession",
    "SimulatorError",
    "TimelineEvent",
    "TopologyMode",
    "in_memory_telemetry",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
