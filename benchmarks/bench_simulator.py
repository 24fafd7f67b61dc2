"""How fast the local Aurora simulator is: start-up, each failover step, tear-down, proxy cost.

    .venv/bin/python benchmarks/bench_simulator.py [--runs 5]

Writes ``benchmarks/results/simulator.json`` and ``benchmarks/results/simulator.md``. Failovers run with
all configurable delays at zero, so the step durations are the work itself (the defaults add
``FailoverDelays()`` on top). The proxy cost is measured A/B interleaved on one connection pair:
``SELECT 1`` through an instance's fault proxy versus straight to its server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict

import asyncpg
from _common import command, commit, header, machine, summary, write

from aurora_async.testing import AuroraSimulator, FailoverDelays

NO_DELAYS = FailoverDelays(promotion=0, topology=0, replica_restart=0, rejoin=0)


async def select_one_latencies(dsn: str, count: int) -> list[float]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for _ in range(50):
            await conn.fetchval("SELECT 1")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        await conn.close()


async def one_run(metrics: dict[str, list[float]]) -> None:
    started = time.perf_counter()
    sim = AuroraSimulator(instances=3, dns_delay=0, delays=NO_DELAYS)
    await sim.__aenter__()
    try:
        metrics["start-up, 3 instances"].append(time.perf_counter() - started)
        host, port = sim.server_endpoint("12").split(":")
        direct = f"postgresql://postgres@{host}:{port}/postgres"
        for _ in range(3):  # A/B interleaved
            metrics["SELECT 1 via fault proxy"].append(
                statistics.median(await select_one_latencies(sim.dsn("12"), 300))
            )
            metrics["SELECT 1 direct to server"].append(
                statistics.median(await select_one_latencies(direct, 300))
            )
        for kind in ("failover", "switchover"):
            report = await (sim.failover() if kind == "failover" else sim.switchover())
            for step, seconds in report.durations().items():
                if step != "endpoint DNS updated":
                    metrics[f"{kind}: {step}"].append(seconds)
            done = [e for e in report.events if e.step == "old writer rejoined"][0]
            metrics[f"{kind}: total"].append(report.offset(done))
    finally:
        stopping = time.perf_counter()
        await sim.__aexit__(None, None, None)
        metrics["tear-down"].append(time.perf_counter() - stopping)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    metrics: dict[str, list[float]] = defaultdict(list)
    for run in range(args.runs):
        await one_run(metrics)
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    result = {
        "benchmark": "simulator",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "metrics_seconds": {name: summary(values) for name, values in metrics.items()},
    }
    lines = [
        *header("Simulator timings", result),
        "| metric | median | min | max | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, stats in result["metrics_seconds"].items():  # type: ignore[attr-defined]
        unit, scale = ("µs", 1e6) if name.startswith("SELECT") else ("ms", 1e3)
        lines.append(
            f"| {name} | {stats['median'] * scale:.1f} {unit} | {stats['min'] * scale:.1f} | "
            f"{stats['max'] * scale:.1f} | {stats['n']} |"
        )
    write("simulator", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
