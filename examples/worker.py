"""An asyncio queue consumer that keeps going through a failover.

    .venv/bin/python examples/worker.py [--engine mysql]

``consume(pool, jobs, results)``: workers take jobs from an ``asyncio.Queue`` and record each one in
the database inside a transaction. A failover interrupts some of them with ``FailoverSuccessError`` or
``TransactionResolutionUnknownError``; the worker re-runs that job (the insert is idempotent: the job id
is the key) and carries on. The pool's DSN picks the engine (``record`` shows asyncpg's and aiomysql's
way of writing the same transaction). Run as a script, it processes 300 jobs while the writer fails
over.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from typing import Any

import aurora_async
from aurora_async import AuroraConnection, AuroraMySQLConnection, AuroraPool

SCHEMA = "CREATE TABLE IF NOT EXISTS jobs_done(job int PRIMARY KEY, worker int, attempts int)"


async def record(conn: AuroraConnection | AuroraMySQLConnection, job: int, worker: int, attempt: int) -> None:
    """Record a job in one transaction; a re-run changes nothing (the job is the primary key)."""
    if isinstance(conn, AuroraMySQLConnection):  # aiomysql's API
        await conn.begin()
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO jobs_done VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE job = job",
                (job, worker, attempt),
            )
        await conn.commit()
    else:  # asyncpg's API
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO jobs_done VALUES ($1, $2, $3) ON CONFLICT (job) DO NOTHING", job, worker, attempt
            )


async def consume(
    pool: AuroraPool[Any], jobs: asyncio.Queue[int | None], retries: Counter[str], worker: int
) -> None:
    """Process jobs until a ``None`` arrives."""
    while (job := await jobs.get()) is not None:
        async for attempt in aurora_async.attempts_of(attempts=5, deadline=60):
            async with attempt as state, pool.acquire() as conn:
                await record(conn, job, worker, state.number)
            if state.number > 1:
                retries[type(state.last_error).__name__] += 1


async def prepare(pool: AuroraPool[Any]) -> None:
    async with pool.acquire() as conn:
        if isinstance(conn, AuroraMySQLConnection):
            async with conn.cursor() as cur:
                await cur.execute(SCHEMA)
        else:
            await conn.execute(SCHEMA)


async def run(
    pool: AuroraPool[Any], job_count: int, workers: int, during: asyncio.Future[Any] | None = None
) -> Counter[str]:
    """Feed ``job_count`` jobs to ``workers`` consumers (while ``during`` runs); returns how many jobs
    needed a retry, by the error that interrupted them."""
    jobs: asyncio.Queue[int | None] = asyncio.Queue()
    retries: Counter[str] = Counter()
    consumers = [asyncio.create_task(consume(pool, jobs, retries, w)) for w in range(workers)]
    for job in range(job_count):
        await jobs.put(job)
    for _ in consumers:
        await jobs.put(None)
    await asyncio.gather(*consumers, *([during] if during is not None else []))
    return retries


async def main(engine: str) -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine=engine, instances=3) as sim:
        async with aurora_async.create_pool(
            sim.dsn("cluster"),
            min_size=4,
            max_size=8,
            cluster_instance_host_pattern=sim.instance_host_pattern,
        ) as pool:
            await prepare(pool)
            failover = asyncio.ensure_future(sim.failover())
            retries = await run(pool, 300, 8, failover)
            async with pool.acquire() as conn:
                writer = conn.instance.instance_id
        done = await count_from_outside(sim, writer)
        print(f"300 jobs queued, {done} recorded exactly once (on {writer} now)")
        print(f"jobs re-run after a failover error: {dict(retries) or 'none'}")


async def count_from_outside(sim: Any, instance: str) -> int:
    """Jobs recorded on ``instance``, read over a plain connection (``plugins=()``: no failover)."""
    async with aurora_async.connect(sim.dsn(instance), plugins=()) as conn:
        if isinstance(conn, AuroraMySQLConnection):
            async with conn.cursor() as cur:
                await cur.execute("SELECT count(DISTINCT job) FROM jobs_done")
                (count,) = await cur.fetchone()
            return int(count)
        return int(await conn.fetchval("SELECT count(DISTINCT job) FROM jobs_done"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
