"""An asyncio queue consumer that keeps going through a failover.

    .venv/bin/python examples/worker.py

``consume(pool, jobs, results)``: workers take jobs from an ``asyncio.Queue`` and record each one in
the database inside a transaction. A failover interrupts some of them with ``FailoverSuccessError`` or
``TransactionResolutionUnknownError``; the worker re-runs that job (the insert is idempotent: the job id
is the key) and carries on. Run as a script, it processes 300 jobs while the writer fails over.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aurora_async
from aurora_async import AuroraPool

SCHEMA = "CREATE TABLE IF NOT EXISTS jobs_done(job int PRIMARY KEY, worker int, attempts int)"
RECORD = "INSERT INTO jobs_done VALUES ($1, $2, $3) ON CONFLICT (job) DO NOTHING"  # a re-run changes nothing


async def consume(
    pool: AuroraPool[Any], jobs: asyncio.Queue[int | None], retries: Counter[str], worker: int
) -> None:
    """Process jobs until a ``None`` arrives."""
    while (job := await jobs.get()) is not None:
        async for attempt in aurora_async.attempts_of(attempts=5, deadline=60):
            async with attempt as state, pool.acquire() as conn, conn.transaction():
                await conn.execute(RECORD, job, worker, state.number)
            if state.number > 1:
                retries[type(state.last_error).__name__] += 1


async def prepare(pool: AuroraPool[Any]) -> None:
    async with pool.acquire() as conn:
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


async def main() -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(instances=3) as sim:
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
                done = await conn.fetchval("SELECT count(*) FROM jobs_done")
                writer = conn.instance.instance_id
        print(f"300 jobs queued, {done} recorded exactly once (on {writer} now)")
        print(f"jobs re-run after a failover error: {dict(retries) or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
