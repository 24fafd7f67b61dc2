"""MySQL: per-query overhead of aurora_async over raw aiomysql, and failover time after promotion.

    .venv/bin/python benchmarks/bench_mysql.py [--rounds 15] [--ops 2000] [--runs 3] [--connections 1 100]

Overhead: both sides talk straight to the writer's MariaDB server (``AuroraSimulator.server_endpoint``,
no fault proxy; so the Multi-AZ topology, which needs no query rewriting by the proxy), every workload
on raw aiomysql and on aurora_async (default plugins) back to back, alternating which goes first; a
round's number is the mean time per operation.

Failover: a fresh 3-instance MariaDB cluster per run (``FailoverDelays(promotion=1.0)``), in each
topology mode (Aurora MySQL and Multi-AZ), N connections through the writer cluster endpoint each
inserting a row every 100 ms and retrying on ``FailoverSuccessError`` /
``TransactionResolutionUnknownError``; the writer crashes; for every worker, its first successful write
on the new writer measured from the simulator's "replica promoted" step. Writes
``benchmarks/results/mysql.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiomysql
from _common import (
    ab_rounds,
    command,
    commit,
    firsts_after_failover,
    header,
    latency_stats,
    machine,
    percentile,
    ratio_table,
    write,
)

import aurora_async
from aurora_async.testing import AuroraSimulator, FailoverDelays

ROWS_100 = "SELECT seq, CONCAT('row number ', seq), NOW() FROM seq_1_to_100"
INSERT = "INSERT INTO beats(worker) VALUES (%s)"
PAUSE = 0.1
DELAYS = FailoverDelays(promotion=1.0)
CONCURRENCY = (1, 32)


async def select_one(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return await cur.fetchone()


async def fetch_100(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(ROWS_100)
        return await cur.fetchall()


async def insert_in_transaction(conn: Any) -> None:
    await conn.begin()
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO bench(v) VALUES ('x')")
    await conn.commit()


WORKLOADS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "SELECT 1": select_one,
    "fetch(100 rows)": fetch_100,
    "insert in a transaction": insert_in_transaction,
}


async def overhead(rounds: int, ops: int) -> dict[str, dict[str, list[float]]]:
    # multi-az: its catalog is native to MariaDB, so it works without the proxy's Aurora rewriting
    async with AuroraSimulator(engine="mysql", instances=2, topology="multi-az") as sim:
        host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
        dsn = sim.dsn(sim.writer_id).replace(sim.endpoint(sim.writer_id), f"{host}:{port}")
        pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
        size = max(CONCURRENCY)
        raw = [
            await aiomysql.connect(host=host, port=int(port), user="admin", db="app", autocommit=True)
            for _ in range(size)
        ]
        ours = [
            await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern, autocommit=True)
            for _ in range(size)
        ]
        assert all(c.instance.instance_id == sim.writer_id for c in ours)
        await select_one(ours[0])
        async with ours[0].cursor() as cur:
            await cur.execute("CREATE TABLE bench(id bigint AUTO_INCREMENT PRIMARY KEY, v varchar(8))")
        try:
            return await ab_rounds(
                {"aiomysql": raw, "aurora_async": ours}, WORKLOADS, CONCURRENCY, rounds, ops
            )
        finally:
            for conn in raw:
                conn.close()
            for aurora_conn in ours:
                await aurora_conn.ensure_closed()


async def insert(conn: Any, worker: int) -> None:
    async with conn.cursor() as cur:
        await cur.execute(INSERT, (worker,))


async def failover_run(topology: Literal["aurora", "multi-az"], connections: int) -> list[float]:
    """Seconds from promotion to each worker's first write on the new writer."""
    async with AuroraSimulator(engine="mysql", instances=3, topology=topology, delays=DELAYS) as sim:
        options = {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 30}
        setup = await aurora_async.connect(sim.dsn("cluster"), plugins=(), autocommit=True)
        async with setup, setup.cursor() as cur:
            await cur.execute("CREATE TABLE beats(id bigint AUTO_INCREMENT PRIMARY KEY, worker int)")
        opening = (
            aurora_async.connect(sim.dsn("cluster"), autocommit=True, **options) for _ in range(connections)
        )
        conns = await asyncio.gather(*opening)
        try:
            report, firsts = await firsts_after_failover(sim, conns, insert, PAUSE)
        finally:
            await asyncio.gather(*(c.ensure_closed() for c in conns))
        if len(firsts) < connections:
            raise SystemExit(f"only {len(firsts)} of {connections} workers wrote to the new writer")
        promoted = next(e.at for e in report.events if e.step == "replica promoted")
        return [t - promoted for t in firsts.values()]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000, help="operations per workload per round and side")
    parser.add_argument("--runs", type=int, default=3, help="failover runs per topology and connection count")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()
    samples = await overhead(args.rounds, args.ops)
    pooled: dict[str, list[float]] = defaultdict(list)
    per_run: dict[str, list[float]] = defaultdict(list)
    for run in range(args.runs):
        topologies: tuple[Literal["aurora", "multi-az"], ...] = ("aurora", "multi-az")
        for topology in topologies:
            for n in args.connections:
                seconds = await failover_run(topology, n)
                key = f"{topology}, {n} conn"
                pooled[key] += seconds
                per_run[key].append(percentile(seconds, 0.95))
                print(
                    f"failover run {run + 1}/{args.runs} {key}: p95 {per_run[key][-1]:.3f} s", file=sys.stderr
                )
    result: dict[str, Any] = {
        "benchmark": "mysql",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_per_operation": {},
        "failover_after_promotion": {
            k: latency_stats(v) | {"p95_per_run": per_run[k]} for k, v in pooled.items()
        },
        "delays": DELAYS.__dict__,
    }
    lines = [
        *header("MySQL: aurora_async vs raw aiomysql, and failover", result),
        f"Overhead: {args.rounds} interleaved rounds of {args.ops} operations per side; per operation: "
        "median over the rounds (min-max); ratio: median of the per-round ratios (min-max).",
        "",
    ]
    lines += ratio_table(result, samples, target=1.05, base="aiomysql")
    lines += [
        "",
        f"Failover ({args.runs} runs per row, interleaved; writer dead {DELAYS.promotion:g} s before "
        "promotion): from the promotion to each worker's first successful write on the new writer.",
        "",
        "| topology, connections | writes | p50 | p95 | max | p95 per run |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key, values in pooled.items():
        s = latency_stats(values)
        runs = ", ".join(f"{p * 1000:.0f}" for p in per_run[key])
        cells = " | ".join(f"{s[k] * 1000:.0f} ms" for k in ("p50", "p95", "max"))
        lines.append(f"| {key} | {s['n']} | {cells} | {runs} |")
    write("mysql", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
