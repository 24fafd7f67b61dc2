"""Host monitoring: how fast a silent (black-holed) host is detected, and what the monitors cost.

    .venv/bin/python benchmarks/bench_host_monitoring.py [--runs 10] [--incumbent-runs 2]

Detection: a connection with only the ``host_monitoring`` plugin runs ``SELECT pg_sleep(600)`` on the
writer; 1-2 s into the call (a random point of the probe schedule) the writer is black-holed (no RST,
no FIN); we time black hole -> the call raising. Once with our defaults, once with the incumbent's
defaults expressed in our options (``failure_detection_time=30, failure_detection_interval=5,
failure_detection_count=3``).

Cost: 500 idle connections to the writer, 10 s, with and without ``host_monitoring`` (interleaved
twice): probes per second per host, and the process's CPU time per second of wall time. Writes
``benchmarks/results/host_monitoring.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from typing import Any

from _common import command, commit, header, machine, percentile, summary, write

import aurora_async
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator

INCUMBENT = {"failure_detection_time": 30, "failure_detection_interval": 5, "failure_detection_count": 3}
IDLE_CONNECTIONS = 500
IDLE_SECONDS = 10.0


async def detection(sim: AuroraSimulator, settings: dict[str, Any]) -> float:
    options = {"cluster_instance_host_pattern": sim.instance_host_pattern, "plugins": ("host_monitoring",)}
    conn = await aurora_async.connect(sim.dsn("11"), **options, **settings)
    try:
        call = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(600)"))
        # the outage comes 1-2 s into the call, at a random point of the probe schedule
        await asyncio.sleep(random.uniform(1.0, 2.0))
        await sim.blackhole("11")
        started = time.monotonic()
        try:
            await asyncio.wait_for(call, 120)
        except (OSError, aurora_async.AuroraError) as exc:
            raise SystemExit(f"unexpected {exc!r}") from exc
        except Exception:
            return time.monotonic() - started
        raise SystemExit("the call returned although its host was black-holed")
    finally:
        conn.terminate()
        await sim.restore("11")


async def idle_cost(sim: AuroraSimulator, monitored: bool) -> dict[str, float]:
    plugins: tuple[str, ...] = ("initial_connection", "aurora_connection_tracker", "failover")
    if monitored:
        plugins += ("host_monitoring",)
    options = {"cluster_instance_host_pattern": sim.instance_host_pattern, "plugins": plugins}
    conns = [await aurora_async.connect(sim.dsn("cluster"), **options) for _ in range(IDLE_CONNECTIONS)]
    try:
        [cluster] = registry.clusters()
        monitors = [m for m in cluster.host_monitors.values() if m.running]
        probes_before = sum(m.stats["probes"] for m in monitors)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        probes = sum(m.stats["probes"] for m in monitors) - probes_before
        return {
            "cpu_fraction": cpu / wall,
            "probes_per_second_per_host": probes / wall / max(1, len(monitors)),
            "monitor_tasks": len(monitors),
        }
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--incumbent-runs", type=int, default=2)
    args = parser.parse_args()
    ours: list[float] = []
    theirs: list[float] = []
    costs: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    async with AuroraSimulator(instances=2, max_connections=IDLE_CONNECTIONS + 50) as sim:
        for run in range(max(args.runs, args.incumbent_runs)):
            if run < args.runs:
                ours.append(await detection(sim, {}))
            if run < args.incumbent_runs:
                theirs.append(await detection(sim, INCUMBENT))
            print(f"detection run {run + 1}: ours {ours[-1]:.2f} s", file=sys.stderr)
        for _ in range(2):
            for monitored in (True, False):
                costs["with" if monitored else "without"].append(await idle_cost(sim, monitored))
    result: dict[str, Any] = {
        "benchmark": "host_monitoring",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "detection_seconds": {
            "defaults": summary(ours),
            "incumbent_defaults": summary(theirs) if theirs else {},
        },
        "idle_cost": costs,
    }

    def row(name: str, values: list[float]) -> str:
        if not values:
            return f"| {name} | 0 | - | - | - |"
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        spread = f"{min(values):.2f}-{max(values):.2f} s"
        return f"| {name} | {len(values)} | {p50:.2f} s | {p95:.2f} s | {spread} |"

    cpu_with = [c["cpu_fraction"] for c in costs["with"]]
    cpu_without = [c["cpu_fraction"] for c in costs["without"]]
    probe_rate = [c["probes_per_second_per_host"] for c in costs["with"]]
    lines = [
        *header("Host monitoring: detection time and cost", result),
        "Black hole on the writer 1-2 s into `SELECT pg_sleep(600)`; time until the call raised.",
        "",
        "| settings | runs | p50 | p95 | min-max |",
        "|---|---:|---:|---:|---:|",
        row("defaults (interval 0.4 s, count 3, grace 0 s)", ours),
        row("incumbent's defaults (interval 5 s, count 3, grace 30 s)", theirs),
        "",
        f"{IDLE_CONNECTIONS} idle connections to the writer for {IDLE_SECONDS:.0f} s, twice each, "
        "interleaved:",
        "",
        "| | CPU of one core (whole process) | probes per second per host | monitor tasks |",
        "|---|---:|---:|---:|",
        f"| with host_monitoring | {', '.join(f'{c:.2%}' for c in cpu_with)} | "
        f"{', '.join(f'{p:.2f}' for p in probe_rate)} | {costs['with'][0]['monitor_tasks']:.0f} |",
        f"| without | {', '.join(f'{c:.2%}' for c in cpu_without)} | - | 0 |",
    ]
    write("host_monitoring", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
