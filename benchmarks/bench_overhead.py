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
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from _common import command, commit, header, machine, ratio_table, write

import aurora_async
from aurora_async.testing import AuroraSimulator

ROWS_100 = "SELECT g, 'row number ' || g AS label, now() AS at FROM generate_series(1, 100) AS g"
WORKLOADS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    'fetchval("SELECT 1")': lambda conn: conn.fetchval("SELECT 1"),
    "fetch(100 rows)": lambda conn: conn.fetch(ROWS_100),
}
CONCURRENCY = (1, 32)


async def batch(conns: list[Any], work: Callable[[Any], Awaitable[Any]], ops: int) -> float:
    """Seconds per operation: ``ops`` operations spread over ``conns``, all connections at once."""
    per_conn = max(1, ops // len(conns))

    async def run(conn: Any) -> None:
        for _ in range(per_conn):
            await work(conn)

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    return (time.perf_counter() - started) / (per_conn * len(conns))


async def measure(sim: AuroraSimulator, rounds: int, ops: int) -> dict[str, dict[str, list[float]]]:
    host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
    dsn = sim.dsn(sim.writer_id).replace(sim.endpoint(sim.writer_id), f"{host}:{port}")
    pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
    size = max(CONCURRENCY)
    raw = [await asyncpg.connect(dsn) for _ in range(size)]
    ours = [await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern) for _ in range(size)]
    assert all(c.instance.instance_id == sim.writer_id for c in ours)
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    try:
        for work in WORKLOADS.values():  # warm both sides up
            for conns in (raw, ours):
                await batch(conns, work, ops // 4)
        for round_no in range(rounds):
            for name, work in WORKLOADS.items():
                for n in CONCURRENCY:
                    sides = [("asyncpg", raw[:n]), ("aurora_async", ours[:n])]
                    if round_no % 2:
                        sides.reverse()
                    for side, conns in sides:
                        samples[f"{name}, {n} conn"][side].append(await batch(conns, work, ops))
            print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
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
