"""What ``enable_telemetry=True`` costs: bench_overhead's workloads, and connect, with telemetry on (the
OpenTelemetry SDK configured: a metric reader and a tracer provider with a span processor) and off.

    .venv/bin/python benchmarks/bench_telemetry.py [--rounds 15] [--ops 2000] [--connects 100]

Both sides talk straight to the writer's PostgreSQL server; each round runs every workload on both,
alternating which goes first (A/B interleaved). Queries record nothing (telemetry is told events, and
there are none per query), so their ratio shows that; a connect opens an ``aurora_async.connect`` span.
Writes ``benchmarks/results/telemetry.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from _common import ab_rounds, command, commit, header, machine, summary, write
from bench_overhead import CONCURRENCY, WORKLOADS

import aurora_async
from aurora_async.testing import AuroraSimulator, in_memory_telemetry

SIDES = ("off", "on")


async def connects(dsn: str, pattern: str, telemetry: bool, n: int) -> float:
    """Seconds per connect + ``SELECT 1`` + close, over ``n`` in a row."""
    started = time.perf_counter()
    for _ in range(n):
        conn = await aurora_async.connect(
            dsn, cluster_instance_host_pattern=pattern, enable_telemetry=telemetry
        )
        await conn.fetchval("SELECT 1")
        await conn.close()
    return (time.perf_counter() - started) / n


async def measure(sim: AuroraSimulator, rounds: int, ops: int, n_connects: int) -> dict[str, Any]:
    host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
    dsn = sim.dsn(sim.writer_id).replace(sim.endpoint(sim.writer_id), f"{host}:{port}")
    pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
    size = max(CONCURRENCY)
    sides: dict[str, list[Any]] = {}
    for side in SIDES:
        sides[side] = [
            await aurora_async.connect(
                dsn, cluster_instance_host_pattern=pattern, enable_telemetry=side == "on"
            )
            for _ in range(size)
        ]
    try:
        samples = await ab_rounds(sides, WORKLOADS, CONCURRENCY, rounds, ops)
    finally:
        for conns in sides.values():
            for conn in conns:
                await conn.close()
    for side in SIDES:  # warm-up
        await connects(dsn, pattern, side == "on", 5)
    connect_samples: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_no in range(rounds):
        order = list(SIDES) if round_no % 2 == 0 else list(reversed(SIDES))
        for side in order:
            connect_samples[side].append(await connects(dsn, pattern, side == "on", n_connects))
        print(f"connect round {round_no + 1}/{rounds} done", file=sys.stderr)
    samples[f"connect + SELECT 1 + close, {n_connects} in a row"] = connect_samples
    return samples


def table(samples: dict[str, dict[str, list[float]]]) -> tuple[list[str], dict[str, Any]]:
    lines = ["| workload | telemetry off µs/op | telemetry on µs/op | ratio on/off |", "|---|---:|---:|---:|"]
    entries: dict[str, Any] = {}

    def cell(stats: dict[str, float]) -> str:
        return f"{stats['median'] * 1e6:.1f} ({stats['min'] * 1e6:.1f}-{stats['max'] * 1e6:.1f})"

    for workload, sides in samples.items():
        ratios = [on / off for off, on in zip(sides["off"], sides["on"], strict=True)]
        entry = {side: summary(values) for side, values in sides.items()} | {"ratio": summary(ratios)}
        entries[workload] = entry
        lines.append(
            f"| {workload} | {cell(entry['off'])} | {cell(entry['on'])} | "
            f"{entry['ratio']['median']:.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |"
        )
    overall = statistics.median(e["ratio"]["median"] for e in entries.values())
    return [*lines, "", f"Median ratio over the workloads: {overall:.3f}."], entries


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000, help="operations per workload per round and side")
    parser.add_argument("--connects", type=int, default=100, help="connects per round and side")
    args = parser.parse_args()
    reader, exporter = in_memory_telemetry()
    async with AuroraSimulator(instances=2) as sim:
        samples = await measure(sim, args.rounds, args.ops, args.connects)
    connect_spans = sum(1 for s in exporter.get_finished_spans() if s.name == "aurora_async.connect")
    result: dict[str, Any] = {
        "benchmark": "telemetry",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "rounds": args.rounds,
        "ops": args.ops,
        "connect_spans": connect_spans,
    }
    lines = header("enable_telemetry: on (OpenTelemetry SDK configured) vs off", result)
    rows, result["seconds_per_operation"] = table(samples)
    lines += [
        f"{args.rounds} interleaved rounds; queries: {args.ops} operations per workload per side on 1 and 32 "
        f"connections straight to the writer's server; connects: {args.connects} in a row per side. Per "
        "operation: median over the rounds (min-max); ratio: median of the per-round ratios (min-max). "
        "The SDK had an in-memory metric reader and a tracer provider with a simple span processor "
        f"({connect_spans} connect spans recorded).",
        "",
        *rows,
    ]
    write("telemetry", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
