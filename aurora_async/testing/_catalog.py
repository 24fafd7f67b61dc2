"""What the PostgreSQL and MySQL catalogs share: the topology modes, how the Multi-AZ catalog names an
endpoint, one instance's row as the catalog reports it, and the identifiers every engine reports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

TopologyMode = Literal["aurora", "multi-az", "none"]
TOPOLOGY_MODES: tuple[TopologyMode, ...] = ("aurora", "multi-az", "none")
# how the Multi-AZ catalog lists an instance's endpoint: a DNS name, as RDS does
# ("11.<cluster tag>.sim.invalid", reached through cluster_instance_host_pattern), or its IP address
EndpointStyle = Literal["names", "addresses"]
ENDPOINT_STYLES: tuple[EndpointStyle, ...] = ("names", "addresses")

MASTER_SESSION_ID = "MASTER_SESSION_ID"


@dataclass(frozen=True)
class TopologyRow:
    """One instance as the catalog reports it."""

    instance_id: str
    is_writer: bool
    session_id: str
    dbi_resource_id: str
    endpoint: str
    port: int
    frozen_at: float | None = None  # epoch seconds: last status update of an instance that is down
    replica_lag_ms: float | None = None
    cpu: float = 1.0
    region: str | None = None  # its cluster's AWS region (a Global Database spans several)


@dataclass(frozen=True)
class BlueGreenHost:
    """One host of a blue/green deployment as its metadata reports it (Aurora PostgreSQL's
    ``get_blue_green_fast_switchover_metadata()``, Aurora MySQL's ``mysql.rds_topology``)."""

    id: str
    endpoint: str
    port: int
    role: str  # BLUE_GREEN_DEPLOYMENT_SOURCE or BLUE_GREEN_DEPLOYMENT_TARGET
    status: str  # AVAILABLE, SWITCHOVER_INITIATED, ..., SWITCHOVER_COMPLETED
    version: str
    update_stamp: float  # epoch seconds


def dbi_resource_id(cluster_tag: str, instance_id: str) -> str:
    digest = hashlib.sha256(f"{cluster_tag}/{instance_id}".encode()).hexdigest().upper()
    return "db-" + digest[:26]
