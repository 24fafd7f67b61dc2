"""One simulated instance: the record the control plane keeps, and the snapshot tests read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["writer", "reader"]
Network = Literal["ok", "crashed", "blackhole"]
MAX_INSTANCES = 32


@dataclass(frozen=True)
class InstanceState:
    """A snapshot of one simulated instance."""

    instance_id: str
    address: str
    port: int
    role: Role
    running: bool
    network: Network
    latency: float

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass
class Instance:
    instance_id: str
    address: str
    role: Role
    running: bool = True
    network: Network = "ok"
    latency: float = 0.0
    frozen_at: float | None = None  # wall-clock time it went down, reported as its last status update
    writer_when_stopped: str | None = None
