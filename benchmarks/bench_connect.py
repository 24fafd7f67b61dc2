"""Connect + first query against the plain driver, on both engines.

    .venv/bin/python benchmarks/bench_connect.py [--samples 300]

For each engine, one simulated Aurora cluster; each sample is one connect through the cluster endpoint,
``SELECT 1`` and close, by plain asyncpg / aiomysql and by aurora_async, alternating which goes first
(A/B interleaved). Two cases for aurora_async: *warm*, another connection of the application holds the
cluster (a pool, a long-lived connection: the usual case), and *alone*, each connect is the only one
(the cluster is released at each close; what it learned is reused for ``topology_refresh``). Targets
(issue 24): PostgreSQL p50 and p95 no worse than asyncpg; MySQL within 1.3x of aiomysql. Writes
``benchmarks/results/connect.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import asyncpg
from _common import command, commit, header, latency_stats, machine, write

import aurora_async
from aurora_async.testing import AuroraSimulator

Sample = Callable[[], Awaitable[None]]


def plain_sample(sim: AuroraSimulator) -> Sample:
    dsn = sim.dsn("cluster")
    if sim.engine == "postgresql":

        async def pg() -> None:
            conn = await asyncpg.connect(dsn)
            await conn.fetchval("SELECT 1")
            await conn.close()

        return pg
    parts = urlsplit(dsn)

    async def my() -> None:
        conn = await aiomysql.connect(
            host=parts.hostname, port=parts.port, user=parts.username, db="app", autocommit=True
        )
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
        await conn.ensure_closed()

    return my


def ours_sample(sim: AuroraSimulator) -> Sample:
    dsn, pattern = sim.dsn("cluster"), sim.instance_host_pattern
    if sim.engine == "postgresql":

        async def pg() -> None:
            conn = await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern)
            await conn.fetchval("SELECT 1")
            await conn.close()

        return pg

    async def my() -> None:
        conn = await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern, autocommit=True)
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
        await conn.ensure_closed()

    return my


async def timed(sample: Sample) -> float:
    started = time.perf_counter()
    await sample()
    return time.perf_counter() - started


async def interleaved(a: Sample, b: Sample, samples: int) -> tuple[list[float], list[float]]:
    first: list[float] = []
    second: list[float] = []
    for k in range(samples):
        if k % 2:
            second.append(await timed(b))
            first.append(await timed(a))
        else:
            first.append(await timed(a))
            second.append(await timed(b))
    return first, second


async def engine_run(engine: str, samples: int) -> dict[str, Any]:
    async with AuroraSimulator(engine=engine, instances=2) as sim:
        plain, ours = plain_sample(sim), ours_sample(sim)
        for _ in range(20):  # warm both paths (imports, the server's caches)
            await plain()
            await ours()
        alone_plain, alone = await interleaved(plain, ours, samples)
        keeper = await aurora_async.connect(
            sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern
        )
        try:
            warm_plain, warm = await interleaved(plain, ours, samples)
        finally:
            await keeper.close() if engine == "postgresql" else await keeper.ensure_closed()
    return {
        "warm": {"plain": latency_stats(warm_plain), "aurora_async": latency_stats(warm)},
        "alone": {"plain": latency_stats(alone_plain), "aurora_async": latency_stats(alone)},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="connects per side and case")
    args = parser.parse_args()
    result: dict[str, Any] = {"command": command(), "commit": commit(), "machine": machine(), "engines": {}}
    for engine in ("postgresql", "mysql"):
        result["engines"][engine] = await engine_run(engine, args.samples)
    lines = [
        *header("Connect + first query against the plain driver", result),
        f"Each sample: connect through the cluster endpoint, `SELECT 1`, close; {args.samples} per side "
        "and case, A/B interleaved. *warm*: another aurora_async connection holds the cluster; *alone*: "
        "each connect is the cluster's only one. Targets: PostgreSQL no worse than asyncpg at p50 and "
        "p95; MySQL within 1.3x of aiomysql.",
        "",
        "| engine | case | plain p50 / p95 ms | aurora_async p50 / p95 ms | ratio p50 / p95 |",
        "|---|---|---:|---:|---:|",
    ]
    for engine, cases in result["engines"].items():
        for case, sides in cases.items():
            plain, ours = sides["plain"], sides["aurora_async"]
            lines.append(
                f"| {engine} | {case} | {plain['p50'] * 1e3:.2f} / {plain['p95'] * 1e3:.2f} | "
                f"{ours['p50'] * 1e3:.2f} / {ours['p95'] * 1e3:.2f} | "
                f"{ours['p50'] / plain['p50']:.2f} / {ours['p95'] / plain['p95']:.2f} |"
            )
    write("connect", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
