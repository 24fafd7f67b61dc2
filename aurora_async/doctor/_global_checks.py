"""The doctor's ``global_database`` check: on an Aurora Global Database (its topology has regions), the
regions and where the global writer is, and the connection's home region and home-region failover modes
(``_global_failover``) as ``connect()`` would take them, with a warning when the home region holds no
instance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .._config import Config
from .._global_failover import HomeModes, home_region_of
from .._rds_hosts import classify_host
from .._topology import Instance, Role, Topology
from ._report import Status
from ._state import Diagnosis

CHECK = "global_database"


def check_global_database(diagnosis: Diagnosis, config: Config, instances: Sequence[Instance]) -> None:
    """Report the Global Database behind ``config`` (INFO when the topology has no regions)."""
    counts = Counter(i.region for i in instances if i.region is not None)
    if not counts:
        diagnosis.add(CHECK, Status.INFO, "not an Aurora Global Database (the topology has no regions)")
        return
    writer = next((i for i in instances if i.role is Role.WRITER), None)
    writer_region = writer.region if writer is not None else None
    options = config.options
    given = options.failover_home_region
    home = home_region_of(options, config.host, Topology(0, tuple(instances), 0.0), None)
    if home is None:
        diagnosis.add(CHECK, Status.INFO, "an Aurora Global Database whose writer has no region listed")
        return
    if given is not None:
        source = "failover_home_region"
    elif classify_host(config.host).region is not None:
        source = "the host name's region"
    else:
        source = "the global writer's region now"
    modes = HomeModes.of(options, home, options.failover_mode)
    regions = ", ".join(
        f"{region} ({n} instance{'s' if n > 1 else ''}{', global writer' if region == writer_region else ''})"
        for region, n in sorted(counts.items())
    )
    details = {
        "regions": sorted(counts),
        "writer_region": writer_region,
        "home_region": home,
        "active_home_failover_mode": modes.active,
        "inactive_home_failover_mode": modes.inactive,
    }
    summary = (
        f"Aurora Global Database: {regions}; home region {home} ({source}); a failover looks for "
        f"active_home_failover_mode={modes.active} while the global writer is at home, "
        f"inactive_home_failover_mode={modes.inactive} otherwise"
    )
    if home not in counts:
        diagnosis.add(
            CHECK,
            Status.WARN,
            summary + f"; no instance is in {home}",
            "set failover_home_region to the region the application runs in, one of "
            + ", ".join(sorted(counts)),
            details,
        )
        return
    diagnosis.add(CHECK, Status.OK, summary, details=details)
