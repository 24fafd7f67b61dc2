"""Connect + first query against the plain driver, on both engines.

    .venv/bin/python benchmarks/bench_connect.py [--samples 300]

For each engine, one simulated Aurora cluster; each sample is one connect through the cluster endpoint,
``SELECT 1`` and close, by plain asyncpg / aiomysql and by aurora_async, alternating which goes first
(A/B interleaved). Two cases for aurora_async: *warm*, another connection of the application holds the
cluster (a pool, a long-lived connection: the usual case), and *alone*, each connect is the only one
(the cluster is released at each close; what it learned is reused for ``topology_refresh``). A third
contender, *plain + role query*, is the plain driver asking the one question aurora_async asks a new
connection (which instance, in which role) before ``SELECT 1``: the floor of a connect that checks where
it landed. Targets (issue 24): PostgreSQL p50 and p95 no worse than asyncpg; MySQL within 1.3x of
aiomysql. Writes ``benchmarks/results/connect.{json,md}``.
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
from aurora_async.mysql.dialects import AuroraMySqlDialect
from aurora_async.postgresql.dialects import AuroraPgDialect
from aurora_async.testing import AuroraSimulator

Sample = Callable[[], Awaitable[None]]


def plain_sample(sim: AuroraSimulator, role_query: str | None = None) -> Sample:
    """The plain driver: connect, ``SELECT 1``, close; with ``role_query``, that query first (the
    question aurora_async asks each new connection, asked the driver's usual way)."""
    dsn = sim.dsn("cluster")
    if sim.engine == "postgresql":

        async def pg() -> None:
            conn = await asyncpg.connect(dsn)
            if role_query is not None:
                await conn.fetchrow(role_query)
            await conn.fetchval("SELECT 1")
            await conn.close()

        return pg
    parts = urlsplit(dsn)

    async def my() -> None:
        conn = await aiomysql.connect(
            host=parts.hostname, port=parts.port, user=parts.username, db="app", autocommit=True
        )
        async with conn.cursor() as cur:
            if role_query is not None:
                await cur.execute(role_query)
                await cur.fetchall()
            await cur.execute("SELECT 1")
            await cur.fetchone()
        await conn.ensure_closed()

    return my


def role_query(engine: str) -> str:
    """The query aurora_async's Aurora dialect asks a new connection (its instance id and role)."""
    dialect = AuroraPgDialect if engine == "postgresql" else AuroraMySqlDialect
    return dialect.IDENTIFY_SQL


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


async def interleaved(contenders: list[Sample], samples: int) -> list[list[float]]:
    """``samples`` timings of each contender, the order rotating from one round to the next."""
    times: list[list[float]] = [[] for _ in contenders]
    for k in range(samples):
        for j in range(len(contenders)):
            which = (j + k) % len(contenders)
            times[which].append(await timed(contenders[which]))
    return times


async def engine_run(engine: str, samples: int) -> dict[str, Any]:
    async with AuroraSimulator(engine=engine, instances=2) as sim:
        contenders = [plain_sample(sim), plain_sample(sim, role_query(engine)), ours_sample(sim)]
        for _ in range(20):  # warm every path (imports, the server's caches)
            for sample in contenders:
                await sample()
        alone = await interleaved(contenders, samples)
        keeper = await aurora_async.connect(
            sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern
        )
        try:
            warm = await interleaved(contenders, samples)
        finally:
            await keeper.close() if engine == "postgresql" else await keeper.ensure_closed()
    names = ("plain", "plain_role_query", "aurora_async")
    return {
        case: {name: latency_stats(times) for name, times in zip(names, runs, strict=True)}
        for case, runs in (("warm", warm), ("alone", alone))
    }


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['p50'] * 1e3:.2f} / {stats['p95'] * 1e3:.2f}"


def _ratio(ours: dict[str, float], base: dict[str, float]) -> str:
    return f"{ours['p50'] / base['p50']:.2f} / {ours['p95'] / base['p95']:.2f}"


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
        "p95; MySQL within 1.3x of aiomysql. *plain + role query*: the plain driver asking the one "
        "question aurora_async asks a new connection (its instance and role), the floor of a connect "
        "that checks where stale DNS landed it.",
        "",
        "| engine | case | plain p50 / p95 ms | plain + role query p50 / p95 ms | aurora_async p50 / p95 ms "
        "| ratio to plain p50 / p95 | ratio to plain + role query p50 / p95 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for engine, cases in result["engines"].items():
        for case, sides in cases.items():
            plain, floor, ours = sides["plain"], sides["plain_role_query"], sides["aurora_async"]
            lines.append(
                f"| {engine} | {case} | {_ms(plain)} | {_ms(floor)} | {_ms(ours)} | "
                f"{_ratio(ours, plain)} | {_ratio(ours, floor)} |"
            )
    write("connect", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
