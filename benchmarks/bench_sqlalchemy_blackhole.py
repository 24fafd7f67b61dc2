"""A SQLAlchemy engine through a black-holed writer: how long until every request succeeds again, with
host monitoring of the connector's connections and without it (how ``raw_connector`` behaved before).

    .venv/bin/python benchmarks/bench_sqlalchemy_blackhole.py [--runs 3] [--engines postgresql mysql]

Each run starts a fresh 3-instance simulated cluster. An engine (``create_async_engine(...,
async_creator=aurora_async.raw_connector(...))``, pool_size 4, default ``topology_refresh`` of 30 s)
serves 4 workers; each runs units of work (a session that reads which instance answers and inserts a
row) one after another, re-running a unit after a ``DBAPIError`` with ``connection_invalidated``. Then
the writer is black-holed (no RST, no FIN: its sockets stay open and silent) and, 1 s later, Aurora's
failover promotes a replica. Measured: from the black hole to each worker's first unit acknowledged by
the new writer (capped at 60 s). "without" runs the connector with the default plugins minus
``host_monitoring``. Variants alternate within each run number. Writes
``benchmarks/results/sqlalchemy_blackhole.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from _common import command, commit, header, latency_stats, machine, write
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import aurora_async
from aurora_async.testing import AuroraSimulator

URL = {"postgresql": "postgresql+asyncpg://", "mysql": "mysql+aiomysql://"}
WHO = {"postgresql": "SELECT pg_catalog.aurora_db_instance_identifier()", "mysql": "SELECT @@server_id"}
DEFAULT_PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring")
VARIANTS = {
    "host_monitoring": DEFAULT_PLUGINS,
    "without": tuple(p for p in DEFAULT_PLUGINS if p != "host_monitoring"),
}
WORKERS = 4
CAP = 60.0
NOTICE = 1.0  # how long Aurora takes to fail over a silent writer, here


async def one_run(engine_name: str, plugins: tuple[str, ...]) -> list[float]:
    """Seconds from the black hole to each worker's first unit on the new writer (CAP if none)."""
    async with AuroraSimulator(engine=engine_name, instances=3) as sim:
        async with aurora_async.raw_connector(
            sim.dsn("cluster"),
            cluster_instance_host_pattern=sim.instance_host_pattern,
            failover_timeout=30,
            plugins=plugins,
        ) as connector:
            engine = create_async_engine(URL[engine_name], async_creator=connector, pool_size=WORKERS)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("CREATE TABLE beats(worker int, instance varchar(16))"))
                old = sim.writer_id
                firsts: dict[int, float] = {}
                stop = asyncio.Event()

                async def unit(k: int) -> str:
                    async with engine.begin() as conn:
                        instance = str(await conn.scalar(text(WHO[engine_name])))
                        await conn.execute(
                            text("INSERT INTO beats VALUES (:k, :instance)"), {"k": k, "instance": instance}
                        )
                    return instance

                async def worker(k: int) -> None:
                    while not stop.is_set():
                        try:
                            instance = await unit(k)
                        except DBAPIError as error:
                            if not error.connection_invalidated:
                                raise
                            continue
                        if instance != old and k not in firsts:
                            firsts[k] = time.monotonic()
                            if len(firsts) == WORKERS:
                                stop.set()
                        await asyncio.sleep(0.05)

                tasks = [asyncio.create_task(worker(k)) for k in range(WORKERS)]
                await asyncio.sleep(1.0)  # steady state
                silent = time.monotonic()
                await sim.blackhole(old)
                await asyncio.sleep(NOTICE)
                await sim.failover()
                try:
                    await asyncio.wait_for(stop.wait(), CAP - (time.monotonic() - silent))
                except TimeoutError:
                    pass
                stop.set()
                for task in tasks:
                    task.cancel()  # a worker still waiting on the silent socket
                await asyncio.gather(*tasks, return_exceptions=True)
                await sim.restore(old)
            finally:
                await engine.dispose()
        return [firsts[k] - silent if k in firsts else CAP for k in range(WORKERS)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["postgresql", "mysql"])
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = {e: {v: [] for v in VARIANTS} for e in args.engines}
    for run in range(args.runs):
        for engine_name in args.engines:
            order = list(VARIANTS.items())
            if run % 2:
                order.reverse()
            for variant, plugins in order:
                samples[engine_name][variant] += await one_run(engine_name, plugins)
                print(f"run {run + 1}/{args.runs} {engine_name} {variant} done", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "sqlalchemy_blackhole",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_from_blackhole_to_first_unit_on_new_writer": {},
    }
    lines = [
        *header("A SQLAlchemy engine through a black-holed writer", result),
        f"{args.runs} runs per engine and variant, {WORKERS} workers each; the writer black-holed, the "
        f"failover {NOTICE:g} s later; from the black hole to each worker's first unit of work acknowledged "
        f"by the new writer (p50 / p95 / max over workers and runs; {CAP:g} s means it never got there).",
        "",
        "| engine | with host monitoring of connector connections | without (before) |",
        "|---|---:|---:|",
    ]
    for engine_name, variants in samples.items():
        stats = {variant: latency_stats(values) for variant, values in variants.items()}
        result["seconds_from_blackhole_to_first_unit_on_new_writer"][engine_name] = stats

        def cell(s: dict[str, float]) -> str:
            return f"{s['p50']:.2f} / {s['p95']:.2f} / {s['max']:.2f} s"

        lines.append(f"| {engine_name} | {cell(stats['host_monitoring'])} | {cell(stats['without'])} |")
    write("sqlalchemy_blackhole", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
