"""Blue/green deployments: what a cluster knows of the deployment it belongs to, from the metadata Aurora
publishes on both clusters (PostgreSQL ``get_blue_green_fast_switchover_metadata()``, MySQL
``mysql.rds_topology``), and what that changes for its connections.

The metadata lists every host of both environments with its side (source: blue, target: green) and
the deployment's status. The topology monitor reads it at each refresh when a connection asked for
the ``bg`` plugin. What the cluster does with it:

- the writer search also watches the target's hosts (:meth:`BlueGreen.extra_candidates`). During a
  switchover blue stops taking writes and drops its connections; a role check counts a write-blocked
  instance as read-only, so no blue instance is ever taken for the writer again, and the first target
  instance that takes writes wins the search: connections fail over to green's writer as soon as it
  accepts writes, and the topology monitor follows it (green's catalog becomes the topology);
- from the moment the metadata says a switchover began (``SWITCHOVER_INITIATED``) until green takes
  writes (``SWITCHOVER_IN_POST_PROCESSING``), a connection running the plugin holds new statements
  that are not inside a transaction, and new connects, for at most ``blue_green_hold_timeout``
  (:attr:`BlueGreen.holding`): RDS drops every connection of both environments while it switches, and
  a statement on the way then has an unknown outcome; held, it runs on green afterwards. Statements
  inside a transaction go on, so that the transaction can end before the drop;
- a statement that surely did not reach a server (its connection was already closed, or a write-blocked
  instance refused it) and whose failover crossed from the source to the target, outside a
  transaction, is run again there rather than raised (:meth:`BlueGreen.crossed_over`): the switchover
  shows as a pause.

Names are not trusted across a switchover: RDS renames the instances and swaps the endpoint names, and
DNS follows late. What decides is the instance's own answer (writer, and takes writes) and, for the
statements run again, that the new instance is listed on the target's side.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._topology import Instance, Role

log = logging.getLogger("aurora_async.topology")

SOURCE = "BLUE_GREEN_DEPLOYMENT_SOURCE"
TARGET = "BLUE_GREEN_DEPLOYMENT_TARGET"


class Phase(enum.Enum):
    """The deployment's phase, as the incumbent wrapper names them."""

    NOT_CREATED = "not_created"
    CREATED = "created"  # AVAILABLE
    PREPARATION = "preparation"  # SWITCHOVER_INITIATED
    IN_PROGRESS = "in_progress"  # SWITCHOVER_IN_PROGRESS
    POST = "post"  # SWITCHOVER_IN_POST_PROCESSING
    COMPLETED = "completed"  # SWITCHOVER_COMPLETED


_PHASES = {
    "AVAILABLE": Phase.CREATED,
    "SWITCHOVER_INITIATED": Phase.PREPARATION,
    "SWITCHOVER_IN_PROGRESS": Phase.IN_PROGRESS,
    "SWITCHOVER_IN_POST_PROCESSING": Phase.POST,
    "SWITCHOVER_COMPLETED": Phase.COMPLETED,
}
_ORDER = list(Phase)


@dataclass(frozen=True)
class BlueGreenHost:
    """One row of the metadata: a host, its side and the deployment's status as that row gives it."""

    endpoint: str
    port: int
    role: str
    status: str

    @property
    def address(self) -> tuple[str, int]:
        return (self.endpoint, self.port)


def phase_of(hosts: Sequence[BlueGreenHost]) -> Phase:
    """The deployment's phase: the furthest any row reports (the rows of one read agree, but a
    status unknown to this version counts for nothing)."""
    phases = [_PHASES[h.status] for h in hosts if h.status in _PHASES]
    if not phases:
        return Phase.NOT_CREATED
    return max(phases, key=_ORDER.index)


class BlueGreen:
    """What one cluster knows of its blue/green deployment (see the module docstring)."""

    def __init__(self, hold_timeout: float = 30.0) -> None:
        self.phase = Phase.NOT_CREATED
        self.hold_timeout = hold_timeout
        # statements and connects wait (until ``hold_until`` on the loop's clock): see the docstring
        self.holding = False
        self.hold_until = 0.0
        self._released = asyncio.Event()
        self._released.set()
        self.switch_seen_at: float | None = None  # when the metadata last showed a switchover under way
        self._target: dict[tuple[str, int], BlueGreenHost] = {}  # every target host seen
        self._source: dict[tuple[str, int], BlueGreenHost] = {}

    def __repr__(self) -> str:
        return f"<BlueGreen {self.phase.value} source={len(self._source)} target={len(self._target)}>"

    def update(self, hosts: Sequence[BlueGreenHost]) -> Phase:
        """A fresh read of the metadata; returns the phase. Target hosts are remembered across reads:
        after a switchover the rows name green's hosts with blue's names, and the earlier names
        (still green's until DNS follows) stay candidates."""
        phase = phase_of(hosts)
        if phase is not self.phase:
            log.info("blue/green deployment: %s -> %s", self.phase.value, phase.value)
        self.phase = phase
        if phase in (Phase.PREPARATION, Phase.IN_PROGRESS, Phase.POST):
            self.switch_seen_at = asyncio.get_running_loop().time()
        if phase in (Phase.PREPARATION, Phase.IN_PROGRESS):
            if not self.holding:
                self.holding = True
                self.hold_until = asyncio.get_running_loop().time() + self.hold_timeout
                self._released.clear()
                log.info("blue/green switchover under way: holding new statements and connects")
        else:
            self.release()
        for host in hosts:
            side = self._target if host.role == TARGET else self._source if host.role == SOURCE else None
            if side is not None:
                side[host.address] = host
        return phase

    def release(self) -> None:
        """Let held statements and connects go (the switchover is over, or the cluster closes)."""
        if self.holding:
            self.holding = False
            self._released.set()

    def must_wait(self) -> bool:
        """Whether a new statement or connect waits now (a hold that outlived ``hold_timeout`` ends)."""
        if not self.holding:
            return False
        if asyncio.get_running_loop().time() < self.hold_until:
            return True
        log.warning(
            "blue/green switchover: no end seen within blue_green_hold_timeout=%g s; statements go on",
            self.hold_timeout,
        )
        self.release()
        return False

    async def wait(self) -> None:
        """Wait until the hold ends (at the latest ``hold_until``)."""
        if not self.must_wait():
            return
        remaining = self.hold_until - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(remaining):
                await self._released.wait()
        except TimeoutError:
            self.must_wait()  # ends the hold, saying so

    def poll_interval(self) -> float | None:
        """How often to read the metadata between topology refreshes: every second while a
        deployment waits for its switchover (its start must be seen), else at the refreshes only
        (during a switchover the refreshes themselves come every ``topology_high_refresh``)."""
        return 1.0 if self.phase is Phase.CREATED else None

    @property
    def switching(self) -> bool:
        """A switchover is under way (read the metadata often)."""
        return self.phase in (Phase.PREPARATION, Phase.IN_PROGRESS, Phase.POST)

    @property
    def target_addresses(self) -> frozenset[tuple[str, int]]:
        return frozenset(self._target)

    def extra_candidates(self, known: Iterable[Instance]) -> list[Instance]:
        """The target's hosts the writer search should watch besides the known instances (each is
        asked whether it is the writer and takes writes)."""
        seen = {(i.host, i.port) for i in known}
        return [
            Instance(f"{host}:{port}", host, port, Role.READER)
            for host, port in sorted(self._target)
            if (host, port) not in seen
        ]

    def crossed_over(self, old: Instance, new: Instance) -> bool:
        """Whether a failover from ``old`` to ``new`` was a switchover's: it crossed from the source's
        hosts to the target's, or it came while a switchover was under way (or had just been, or been
        rolled back: within ``hold_timeout`` of the metadata last showing one). A later failover within
        green does not count."""
        if (old.host, old.port) in self._source and (new.host, new.port) in self._target:
            return True
        seen = self.switch_seen_at
        return seen is not None and asyncio.get_running_loop().time() - seen < self.hold_timeout
