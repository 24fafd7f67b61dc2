"""The MySQL pool: aurora_async.create_pool("mysql://...") against aiomysql.create_pool, and a failover
through it with 100 tasks.

    .venv/bin/python benchmarks/bench_pool_mysql.py [--rounds 15] [--ops 2000] [--runs 3] [--tasks 100]

Overhead: both pools (max_size 10, ``autocommit=True`` as aiomysql pool users set it) talk straight to
the writer's MariaDB server (``AuroraSimulator.server_endpoint``). Workloads: acquire, ``SELECT 1``
through a cursor, release; and a bare acquire + release; from 1 task and from 32 tasks sharing the pool.
aiomysql's pool resets nothing on release; ours resets the session (``COM_RESET_CONNECTION`` and the
connect settings again, pipelined: one round trip), unless the checkout sent nothing to the server (the
bare acquire + release). Rounds
alternate which pool goes first; per round the mean time per operation; reported: medians and the
median of the per-round ratios.

Failover: a fresh 3-instance simulated Aurora MySQL cluster per run (the writer dead for a second
before a replica is promoted); ``--tasks`` tasks share one pool (max_size 20) and each writes a row
every 100 ms through ``async with pool.acquire()``, retrying on ``FailoverSuccessError`` /
``TransactionResolutionUnknownError``. Mid-run the writer dies; for every task we take its first
write on the new writer, measured from the simulator's "replica promoted" step.

Writes ``benchmarks/results/pool_mysql.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiomysql
from _common import command, commit, header, latency_stats, machine, ratio_table, write

import aurora_async
from aurora_async._retry import RETRYABLE
from aurora_async.testing import AuroraSimulator, FailoverDelays

DELAYS = FailoverDelays(promotion=1.0)
PAUSE = 0.1


async def with_query(pool: Any) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchone()


async def bare(pool: Any) -> None:
    async with pool.acquire():
        pass


WORKLOADS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "acquire + SELECT 1 + release": with_query,
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


async def overhead(rounds: int, ops: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    # multi-az: MariaDB answers its catalog natively, so a pool straight to the server (no fault proxy,
    # whose Aurora rewriting is needed for the aurora catalog) still knows the topology
    async with AuroraSimulator(engine="mysql", instances=2, topology="multi-az") as sim:
        host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
        pattern = f"{sim.instance_host_pattern.rsplit(':', 1)[0]}:{port}"
        theirs = await aiomysql.create_pool(
            host=host, port=int(port), user="admin", db="app", autocommit=True, minsize=10, maxsize=10
        )
        ours = await aurora_async.create_pool(
            f"mysql://admin@{host}:{port}/app",
            engine="mysql",
            min_size=10,
            max_size=10,
            autocommit=True,
            cluster_instance_host_pattern=pattern,
        )
        try:
            for work in WORKLOADS.values():  # warm-up
                for pool in (theirs, ours):
                    await batch(pool, work, 32, ops // 4)
            for round_no in range(rounds):
                for name, work in WORKLOADS.items():
                    for tasks in TASKS:
                        sides: list[tuple[str, Any]] = [("aiomysql", theirs), ("aurora_async", ours)]
                        if round_no % 2:
                            sides.reverse()
                        for side, pool in sides:
                            samples[f"{name}, {tasks} task(s)"][side].append(
                                await batch(pool, work, tasks, ops)
                            )
                print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
        finally:
            theirs.close()
            await theirs.wait_closed()
            await ours.close()
    return samples


async def failover_run(tasks: int) -> list[float]:
    """Seconds from promotion to each task's first write on the new writer."""
    async with AuroraSimulator(engine="mysql", instances=3, delays=DELAYS) as sim:
        options: dict[str, Any] = {
            "cluster_instance_host_pattern": sim.instance_host_pattern,
            "failover_timeout": 30,
        }
        async with aurora_async.create_pool(
            sim.dsn("cluster"), engine="mysql", min_size=20, max_size=20, autocommit=True, **options
        ) as pool:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("CREATE TABLE beats(id bigint AUTO_INCREMENT PRIMARY KEY, worker int)")
            old = sim.writer_id
            firsts: dict[int, float] = {}
            stop, everyone = asyncio.Event(), asyncio.Event()

            async def task(k: int) -> None:
                while not stop.is_set():
                    try:
                        async with pool.acquire() as conn, conn.cursor() as cur:
                            await cur.execute("INSERT INTO beats(worker) VALUES (%s)", (k,))
                            instance = conn.instance.instance_id
                    except RETRYABLE:
                        continue
                    if instance != old and k not in firsts:
                        firsts[k] = time.monotonic()
                        if len(firsts) == tasks:
                            everyone.set()
                    await asyncio.sleep(PAUSE)

            running = [asyncio.create_task(task(k)) for k in range(tasks)]
            try:
                await asyncio.sleep(1.0)  # steady state before the failure
                report = await sim.failover()
                await asyncio.wait_for(everyone.wait(), 30)
            finally:
                stop.set()
                await asyncio.gather(*running)
        promoted = next(e.at for e in report.events if e.step == "replica promoted")
        return [t - promoted for t in firsts.values()]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    samples = await overhead(args.rounds, args.ops)
    firsts: list[float] = []
    for run in range(args.runs):
        firsts += await failover_run(args.tasks)
        print(f"failover run {run + 1}/{args.runs} done", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "pool_mysql",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_per_operation": {},
    }
    lines = [
        *header("The MySQL pool: aurora_async.create_pool vs aiomysql.create_pool", result),
        f"MariaDB {await mariadb_version()} (the simulator's Aurora MySQL), aiomysql {aiomysql.__version__}.",
        "",
        "## Overhead",
        "",
        f"{args.rounds} interleaved rounds of {args.ops} operations per pool; per operation: median over "
        "the rounds (min-max); ratio: median of the per-round ratios (min-max). aiomysql's pool resets "
        "nothing on release; ours resets the session (one round trip, none when nothing was sent).",
        "",
    ]
    lines += ratio_table(result, samples, target=None, base="aiomysql")
    stats = latency_stats(firsts)
    result["failover_pool_first_write_after_promotion_s"] = stats
    lines += [
        "",
        "## Failover through the pool",
        "",
        f"{args.tasks} tasks sharing one pool (max_size 20), {args.runs} runs (the writer dead 1 s before "
        "the promotion); promotion → each task's first write on the new writer: "
        f"p50 {stats['p50'] * 1000:.0f} ms, p95 {stats['p95'] * 1000:.0f} ms, "
        f"max {stats['max'] * 1000:.0f} ms ({stats['n']} tasks).",
    ]
    write("pool_mysql", result, lines)


async def mariadb_version() -> str:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "PATH=$PATH:/usr/sbin mariadbd --version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out.decode().split("Ver ")[-1].split("-MariaDB")[0].strip() or "?"


if __name__ == "__main__":
    asyncio.run(main())
