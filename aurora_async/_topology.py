"""What the cluster looks like: immutable, versioned snapshots of its instances and their roles."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace
from datetime import datetime


class Role(enum.Enum):
    WRITER = "writer"
    READER = "reader"


@dataclass(frozen=True)
class Instance:
    """One database instance of the cluster, as the topology names it."""

    instance_id: str
    host: str
    port: int
    role: Role
    last_update: datetime | None = None
    replica_lag_ms: float | None = None
    region: str | None = None  # its AWS region, where the catalog says (an Aurora Global Database)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"<Instance {self.instance_id} {self.role.value} {self.endpoint}>"


@dataclass(frozen=True)
class Topology:
    """A snapshot: every known instance, at most one writer. ``version`` grows with each publication;
    ``verified_at`` (the event loop's clock) is when the writer was last confirmed by asking it."""

    version: int
    instances: tuple[Instance, ...]
    verified_at: float

    @property
    def writer(self) -> Instance | None:
        return next((i for i in self.instances if i.role is Role.WRITER), None)

    @property
    def readers(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.role is Role.READER)

    @functools.cached_property
    def regions(self) -> frozenset[str]:
        """The AWS regions its instances are in (an Aurora Global Database's; empty elsewhere)."""
        return frozenset(i.region for i in self.instances if i.region is not None)

    def get(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if i.instance_id == instance_id), None)

    def same_layout(self, other: Topology | None) -> bool:
        """Same instances in the same roles (lag and timestamps aside)."""
        if other is None:
            return False
        mine = {(i.instance_id, i.role, i.host, i.port) for i in self.instances}
        return mine == {(i.instance_id, i.role, i.host, i.port) for i in other.instances}

    def __repr__(self) -> str:
        writer = self.writer.instance_id if self.writer else None
        readers = [r.instance_id for r in self.readers]
        return f"<Topology v{self.version} writer={writer} readers={readers}>"


def with_writer(instances: list[Instance], writer_id: str, host: str, port: int) -> list[Instance]:
    """``instances`` with ``writer_id``, an instance that just proved it is the writer, as their only
    writer: whatever other rows claim, and added at ``host:port`` if the rows do not list it."""
    out = [replace(i, role=Role.WRITER if i.instance_id == writer_id else Role.READER) for i in instances]
    if not any(i.instance_id == writer_id for i in out):
        out.append(Instance(writer_id, host, port, Role.WRITER))
    return out
