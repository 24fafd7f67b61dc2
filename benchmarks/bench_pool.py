"""Pool overhead: aurora_async.create_pool vs asyncpg.create_pool.

    .venv/bin/python benchmarks/bench_pool.py [--rounds 15] [--ops 2000]

Both pools (max_size 10) talk straight to the writer's server (``AuroraSimulator.server_endpoint``).
Workloads: ``async with pool.acquire() as c: await c.fetchval("SELECT 1")`` and a bare acquire +
release (both pools reset the session on release), from 1 task and from 32 tasks sharing the pool.
Rounds alternate which pool goes first; per round the mean time per operation; reported: medians and
the median of the per-round ratios. Writes ``benchmarks/results/pool.{json,md}``.
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


async def with_query(pool: Any) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def bare(pool: Any) -> None:
    async with pool.acquire():
        pass


WORKLOADS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "acquire + fetchval + release": with_query,
    "acquire + release": bare,
}
TASKS = (1, 32)


async def batch(pool: Any, work: Callable[[Any], Awaitable[None]], tasks: int, ops: int) -> float:
    per_task = max(1, ops // tasks)

    async def loop() -> None:
        for _ in range(per_task):
            await work(pool)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return (time.perf_counter() - started) / (per_task * tasks)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    async with AuroraSimulator(instances=2) as sim:
        host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
        dsn = sim.dsn(sim.writer_id).replace(sim.endpoint(sim.writer_id), f"{host}:{port}")
        pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
        theirs = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        ours = await aurora_async.create_pool(
            dsn, min_size=10, max_size=10, cluster_instance_host_pattern=pattern
        )
        try:
            for work in WORKLOADS.values():  # warm-up
                for pool in (theirs, ours):
                    await batch(pool, work, 32, args.ops // 4)
            for round_no in range(args.rounds):
                for name, work in WORKLOADS.items():
                    for tasks in TASKS:
                        sides: list[tuple[str, Any]] = [("asyncpg", theirs), ("aurora_async", ours)]
                        if round_no % 2:
                            sides.reverse()
                        for side, pool in sides:
                            samples[f"{name}, {tasks} task(s)"][side].append(
                                await batch(pool, work, tasks, args.ops)
                            )
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            await theirs.close()
            await ours.close()
    result: dict[str, Any] = {
        "benchmark": "pool",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_per_operation": {},
    }
    lines = [
        *header("Pool overhead: aurora_async.create_pool vs asyncpg.create_pool", result),
        f"{args.rounds} interleaved rounds of {args.ops} operations per pool; per operation: median over the "
        "rounds (min-max); ratio: median of the per-round ratios (min-max).",
        "",
    ]
    lines += ratio_table(result, samples, target=1.10)
    write("pool", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
