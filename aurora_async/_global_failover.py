"""An Aurora Global Database's home-region failover modes: what a failover looks for, by where the
global writer is (the incumbent's ``gdb_failover`` modes, as options of ours).

A connection has a home region (``failover_home_region``; by default the region its host name names,
else the global writer's region when the connection opened) and two modes: ``active_home_failover_mode``
applies when, after the failure, the global writer is in the home region, ``inactive_home_failover_mode``
when it is not. Each is one of:

================================  ===============================================================
``strict_writer``                 the global writer, wherever it is
``strict_home_reader``            a reader in the home region (its role checked)
``strict_out_of_home_reader``     a reader in another region (its role checked)
``strict_any_reader``             a reader in any region (its role checked)
``home_reader_or_writer``         the writer, or a reader in the home region (role not checked)
``out_of_home_reader_or_writer``  the writer, or a reader in another region (role not checked)
``any_reader_or_writer``          any instance
================================  ===============================================================

Left out, each defaults from the connection's ``failover_mode`` (:data:`DEFAULT_FOR`), so a
connection that names neither keeps its role and, reading, stays in its home region. They apply only
where the topology has regions (dialects ``global-aurora-pg``, ``global-aurora-mysql``); elsewhere
``failover_mode`` alone does.

Everything here is pure: which mode applies (:meth:`HomeModes.target`) and which instances it allows
(:meth:`GlobalTarget.allows`). Finding the global writer when the failure may have moved it is
``_routing``'s (:func:`aurora_async._routing.home_region_target`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._options import FailoverMode, GlobalFailoverMode, Options
from ._rds_hosts import classify_host
from ._topology import Instance, Role, Topology

# the home-region mode a failover_mode stands for when a mode is not given
DEFAULT_FOR: Mapping[FailoverMode, GlobalFailoverMode] = {
    "strict_writer": "strict_writer",
    "strict_reader": "strict_home_reader",
    "reader_or_writer": "home_reader_or_writer",
}

# which readers each mode allows, by region: "home", "out" (any other region) or "any"; the writer
# modes allow no reader
_READERS_IN: Mapping[GlobalFailoverMode, str | None] = {
    "strict_writer": None,
    "strict_home_reader": "home",
    "strict_out_of_home_reader": "out",
    "strict_any_reader": "any",
    "home_reader_or_writer": "home",
    "out_of_home_reader_or_writer": "out",
    "any_reader_or_writer": "any",
}


def spans_regions(topology: Topology | None) -> bool:
    """Whether ``topology`` is a Global Database's: its instances carry their regions."""
    return topology is not None and bool(topology.regions)


def default_home_region(host: str, topology: Topology | None, reached: Instance | None) -> str | None:
    """The home region when ``failover_home_region`` is not given: the region ``host`` names (a
    regional cluster or instance endpoint), else the global writer's in ``topology`` (a global writer
    endpoint, an IP address), else that of the instance ``reached``; None when none says."""
    named = classify_host(host).region
    if named is not None:
        return named.lower()
    writer = topology.writer if topology is not None else None
    if writer is not None and writer.region is not None:
        return writer.region
    return reached.region if reached is not None else None


def home_region_of(
    options: Options, host: str, topology: Topology | None, reached: Instance | None
) -> str | None:
    """A connection's home region: ``failover_home_region`` when given, else
    :func:`default_home_region`."""
    return options.failover_home_region or default_home_region(host, topology, reached)


def home_modes(
    topology: Topology | None, options: Options, home: str | None, mode: FailoverMode, *, given: bool = True
) -> HomeModes | None:
    """The home-region modes of a connection (``HomeModes.of``) when ``topology`` is a Global
    Database's and its ``home`` is known; None elsewhere (``failover_mode`` alone applies)."""
    if home is None or not spans_regions(topology):
        return None
    return HomeModes.of(options, home, mode, given=given)


@dataclass(frozen=True)
class HomeModes:
    """A connection's home region and its two modes (see the module docstring)."""

    home: str
    active: GlobalFailoverMode
    inactive: GlobalFailoverMode

    @classmethod
    def of(cls, options: Options, home: str, mode: FailoverMode, *, given: bool = True) -> HomeModes:
        """The modes of ``options``, each defaulting from ``mode`` (the connection's failover mode);
        ``given=False``: both from ``mode``, whatever ``options`` say (a session that read/write
        splitting moved to a reader)."""
        default = DEFAULT_FOR[mode]
        active = options.active_home_failover_mode if given else None
        inactive = options.inactive_home_failover_mode if given else None
        return cls(home, active or default, inactive or default)

    def target(self, writer: Instance | None) -> GlobalTarget:
        """What a failover looks for while ``writer`` is the global writer (None: unknown, which
        counts as away from home)."""
        active = writer is not None and writer.region == self.home
        return GlobalTarget(self.active if active else self.inactive, self.home, active)


@dataclass(frozen=True)
class GlobalTarget:
    """The mode one failover runs in: ``mode``, chosen as the ``active`` or inactive one."""

    mode: GlobalFailoverMode
    home: str
    active: bool  # the global writer is in the home region: active_home_failover_mode applies

    @property
    def option(self) -> str:
        """The option the mode comes from."""
        return "active_home_failover_mode" if self.active else "inactive_home_failover_mode"

    @property
    def wants_writer(self) -> bool:
        """The global writer and nothing else (the writer search, as ``strict_writer``)."""
        return self.mode == "strict_writer"

    @property
    def reader_mode(self) -> FailoverMode:
        """How reader placement treats the instances :meth:`allows`: ``strict_reader`` checks a
        reader's role; ``reader_or_writer`` takes the writer too, and checks no role."""
        if self.mode == "strict_writer":
            return "strict_writer"
        return "strict_reader" if self.mode.startswith("strict_") else "reader_or_writer"

    def allows(self, instance: Instance) -> bool:
        """Whether a failover in this mode may place a connection on ``instance`` (as the topology
        lists it). An instance whose region is unknown is in neither the home region nor another."""
        readers_in = _READERS_IN[self.mode]
        if instance.role is Role.WRITER:
            return self.mode == "strict_writer" or self.mode.endswith("_or_writer")
        if readers_in == "any":
            return True
        if readers_in is None or instance.region is None:
            return False
        return (instance.region == self.home) == (readers_in == "home")

    def candidates(self, topology: Topology | None) -> list[Instance]:
        """The instances of ``topology`` this mode allows, in its order."""
        return [i for i in topology.instances if self.allows(i)] if topology is not None else []

    @property
    def wanted(self) -> str:
        """What the mode looks for, in words."""
        home = self.home
        return {
            "strict_writer": "global writer",
            "strict_home_reader": f"reader in home region {home}",
            "strict_out_of_home_reader": f"reader outside home region {home}",
            "strict_any_reader": "reader in any region",
            "home_reader_or_writer": f"writer or reader in home region {home}",
            "out_of_home_reader_or_writer": f"writer or reader outside home region {home}",
            "any_reader_or_writer": "instance in any region",
        }[self.mode]

    def describe(self) -> str:
        """The mode, the option it came from and why: for messages and logs."""
        where = "in" if self.active else "outside"
        return f"{self.option}={self.mode}: the global writer is {where} home region {self.home}"
