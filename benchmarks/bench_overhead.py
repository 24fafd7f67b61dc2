"""Per-query overhead of aurora_async (failover and tracker on) over raw asyncpg.

    .venv/bin/python benchmarks/bench_overhead.py [--rounds 15] [--ops 2000]

Both sides talk straight to the writer's PostgreSQL server (``AuroraSimulator.server_endpoint``), so
the simulator's fault proxy adds nothing to either. Each round runs every workload on raw asyncpg
and on aurora_async back to back, alternating which goes first; a round's number is the mean time
per operation. Reported: medians over the rounds, their spread, and the median of the per-round
ratios. Writes ``benchmarks/results/overhead.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from _common import ab_rounds, command, commit, header, machine, ratio_table, write

import aurora_async
from aurora_async.testing import AuroraSimulator

ROWS_100 = "SELECT g, 'row number ' || g AS label, now() AS at FROM generate_series(1, 100) AS g"
WORKLOADS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    'fetchval("SELECT 1")': lambda conn: conn.fetchval("SELECT 1"),
    "fetch(100 rows)": lambda conn: conn.fetch(ROWS_100),
}
CONCURRENCY = (1, 32)


async def measure(sim: AuroraSimulator, rounds: int, ops: int) -> dict[str, dict[str, list[float]]]:
    host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
    dsn = sim.dsn(sim.writer_id).replace(sim.endpoint(sim.writer_id), f"{host}:{port}")
    pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
    size = max(CONCURRENCY)
    raw = [await asyncpg.connect(dsn) for _ in range(size)]
    ours = [await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern) for _ in range(size)]
    assert all(c.instance.instance_id == sim.writer_id for c in ours)
    try:
        samples = await ab_rounds({"asyncpg": raw, "aurora_async": ours}, WORKLOADS, CONCURRENCY, rounds, ops)
    finally:
        for conn in raw:
            await conn.close()
        for aurora_conn in ours:
            await aurora_conn.close()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000, help="operations per workload per round and side")
    args = parser.parse_args()
    async with AuroraSimulator(instances=2) as sim:
        samples = await measure(sim, args.rounds, args.ops)
    result: dict[str, Any] = {
        "benchmark": "overhead",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_per_operation": {},
    }
    lines = [
        *header("Per-query overhead: aurora_async vs raw asyncpg", result),
        f"{args.rounds} interleaved rounds of {args.ops} operations per side; per operation: median over the "
        "rounds (min-max); ratio: median of the per-round ratios (min-max).",
        "",
    ]
    lines += ratio_table(result, samples, target=1.05)
    write("overhead", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
