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
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import asyncpg

from aurora_async.testing import AuroraSimulator, FailoverDelays

RESULTS = Path(__file__).resolve().parent / "results"
NO_DELAYS = FailoverDelays(promotion=0, topology=0, replica_restart=0, rejoin=0)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


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


def machine() -> dict[str, str]:
    pg = subprocess.run(
        ["sh", "-c", "ls -d /usr/lib/postgresql/*/bin | tail -1"], capture_output=True, text=True, check=False
    ).stdout.strip()
    version = subprocess.run([f"{pg}/postgres", "--version"], capture_output=True, text=True, check=False)
    return {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "postgres": version.stdout.strip(),
        "asyncpg": asyncpg.__version__,
    }


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


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
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "commit": commit(),
        "machine": machine(),
        "metrics_seconds": {name: summary(values) for name, values in metrics.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Simulator timings",
        "",
        f"`{result['command']}` at commit `{result['commit']}`, {result['machine']['cpus']} CPUs, "
        f"{result['machine']['postgres']}, Python {result['machine']['python']}.",
        "",
        "| metric | median | min | max | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, stats in result["metrics_seconds"].items():  # type: ignore[attr-defined]
        unit, scale = ("µs", 1e6) if name.startswith("SELECT") else ("ms", 1e3)
        lines.append(
            f"| {name} | {stats['median'] * scale:.1f} {unit} | {stats['min'] * scale:.1f} | "
            f"{stats['max'] * scale:.1f} | {stats['n']} |"
        )
    (RESULTS / "simulator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
