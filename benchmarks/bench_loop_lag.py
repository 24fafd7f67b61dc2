"""Event-loop stalls while the library works: how late a 1 ms ticker wakes during each kind of work.

    .venv/bin/python benchmarks/bench_loop_lag.py [--runs 3] [--connections 100]

One process, one event loop, a ticker task that sleeps 1 ms and records how late it woke. Each phase
runs the library's work of one kind while the ticker runs, and reports the longest stall and the 99th
percentile of the lateness: an idle loop (the floor), the first use of AWS in the process (importing
aioboto3 and loading botocore's model, once), IAM tokens and Secrets Manager secrets fetched with a
warm session, a storm of concurrent connects (and the same storm with plain asyncpg, for the floor of
that many handshakes in one loop), a failover of that many connections, and Data API calls.
The warm phases run ``--runs`` times (the worst run is reported). AWS is moto's server and the Data API
emulator on loopback. The simulator's own work (its failover) shares the loop in the failover phase;
its servers and proxy are other processes. Writes ``benchmarks/results/loop_lag.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from _common import cluster_keywords, command, commit, header, machine, percentile, write

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator, MotoServer

TICK = 0.001
TARGET_MS = 20.0


class Ticker:
    """A task that sleeps ``TICK`` and records how late the loop woke it, while a phase runs."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK)
            self.lateness.append(max(0.0, loop.time() - before - TICK))

    @asynccontextmanager
    async def measuring(self) -> AsyncIterator[list[float]]:
        self.lateness = []
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.01)
        try:
            yield self.lateness
            # let the ticker wake once more: a stall at the very end of the phase (work that never
            # awaited) shows only in the tick it delayed
            await asyncio.sleep(2 * TICK)
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def stats(lateness: list[float], seconds: float) -> dict[str, float]:
    return {
        "max_ms": max(lateness, default=0.0) * 1000,
        "p99_ms": percentile(lateness, 0.99) * 1000 if lateness else 0.0,
        "ticks": len(lateness),
        "seconds": seconds,
    }


async def phase(ticker: Ticker, work: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    async with ticker.measuring() as lateness:
        started = time.perf_counter()
        await work()
        took = time.perf_counter() - started
    return stats(list(lateness), took)


async def measure(
    sim: AuroraSimulator, endpoint: str, runs: int, n: int
) -> dict[str, list[dict[str, float]]]:
    common: dict[str, Any] = cluster_keywords(sim) | {"failover_timeout": 30}
    ticker = Ticker()
    results: dict[str, list[dict[str, float]]] = {}
    keep: list[Any] = []
    sessions: dict[str, Any] = {}

    async def idle() -> None:
        await asyncio.sleep(1.0)

    results["idle loop (the floor)"] = [await phase(ticker, idle)]

    async def import_aws() -> None:
        import aioboto3  # noqa: PLC0415, F401 - the import itself is measured

    async def first_aws_use() -> None:
        from aurora_async.testing import RehearsalSession  # noqa: PLC0415

        sessions["iam"] = RehearsalSession(sim, "lag_iam")  # each token becomes lag_iam's password
        keep.append(await aurora_async.connect(**iam_options(sessions["iam"], "db-0.lag.internal")))

    def iam_options(session: Any, token_host: str) -> dict[str, Any]:
        return {
            "user": "lag_iam",
            "plugins": ("initial_connection", "failover", "iam"),
            "iam_region": "us-east-1",
            "iam_host": token_host,  # a new token host: a new token, not the cached one
            "iam_allow_plaintext": True,
            "aws_session": session,
            **common,
        }

    # an application can import it before its loop starts (see docs/credentials.md); the library
    # imports it at the first connection that needs AWS
    results["import aioboto3 (once per process)"] = [await phase(ticker, import_aws)]
    results["first AWS use in the process (session, credentials, IAM token)"] = [
        await phase(ticker, first_aws_use)
    ]

    import aioboto3  # noqa: PLC0415 - imported by the phase above

    async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as admin:
        for k in range(runs * 10):
            await admin.create_secret(
                Name=f"lag/{k}", SecretString=json.dumps({"username": "lag_secret", "password": "lag-pw-1"})
            )
    await sim.set_password("lag_secret", "lag-pw-1")
    from aurora_async.testing import RehearsalSession  # noqa: PLC0415

    sessions["secret"] = RehearsalSession()
    counter = iter(range(1, 1_000_000))

    async def tokens() -> None:
        for _ in range(10):
            conn = await aurora_async.connect(
                **iam_options(sessions["iam"], f"db-{next(counter)}.lag.internal")
            )
            await conn.close()

    async def secrets(run: int) -> None:
        for k in range(10):
            conn = await aurora_async.connect(
                plugins=("initial_connection", "failover", "aws_secrets_manager"),
                secrets_manager_secret_id=f"lag/{run * 10 + k}",
                secrets_manager_region="us-east-1",
                secrets_manager_endpoint=endpoint,
                aws_session=sessions["secret"],
                **common,
            )
            await conn.close()

    results["10 IAM tokens, warm session"] = [await phase(ticker, tokens) for _ in range(runs)]
    fetches = []
    for run in range(runs):
        fetches.append(await phase(ticker, functools.partial(secrets, run)))
    results["10 Secrets Manager fetches, warm session"] = fetches

    storm: list[Any] = []

    async def connect_storm() -> None:
        storm[:] = await asyncio.gather(
            *(aurora_async.connect(sim.dsn("cluster"), **_pattern(sim)) for _ in range(n))
        )

    async def close_all() -> None:
        await asyncio.gather(*(c.close() for c in storm))

    async def plain_storm() -> None:
        import asyncpg  # noqa: PLC0415

        conns = await asyncio.gather(*(asyncpg.connect(sim.dsn("cluster")) for _ in range(n)))
        await asyncio.gather(*(c.close() for c in conns))

    # the same storm with the plain driver: what n handshakes in one loop cost without the library
    results[f"{n} connects at once, plain asyncpg (baseline)"] = [
        await phase(ticker, plain_storm) for _ in range(runs)
    ]
    storm_runs = []
    for _ in range(runs):
        storm_runs.append(await phase(ticker, connect_storm))
        if len(storm_runs) < runs:
            await close_all()
    results[f"{n} connects at once"] = storm_runs

    async def failover() -> None:
        report = await sim.failover()

        async def one(conn: Any) -> None:
            try:
                await conn.fetchval("SELECT 1")
            except aurora_async.FailoverSuccessError:
                await conn.fetchval("SELECT 1")
            assert conn.instance.instance_id == report.new_writer

        await asyncio.gather(*(one(c) for c in storm))

    results[f"failover of {n} connections"] = [await phase(ticker, failover)]
    await close_all()
    for conn in keep:
        await conn.close()

    async with (
        DataApiEmulator(sim) as emulator,
        aurora_async.data_api.connect(
            resource_arn=emulator.resource_arn,
            secret_arn=emulator.secret_arn,
            endpoint_url=emulator.endpoint_url,
            engine="postgresql",
        ) as data,
    ):
        await data.fetchval("SELECT 1")  # its client made

        async def calls() -> None:
            for _ in range(20):
                await data.fetchval("SELECT 1")

        results["20 Data API calls"] = [await phase(ticker, calls) for _ in range(runs)]
    return results


def _pattern(sim: AuroraSimulator) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 30}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()
    os.environ.update(DUMMY_AWS_ENV)
    async with MotoServer() as endpoint, AuroraSimulator(instances=3, max_connections=400) as sim:
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # nothing may reach AWS
        results = await measure(sim, endpoint, args.runs, args.connections)
    result: dict[str, Any] = {
        "benchmark": "loop_lag",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "runs": args.runs,
        "phases": results,
        "target_ms": TARGET_MS,
    }
    lines = header("Event-loop stalls while the library works", result)
    lines += [
        f"A 1 ms ticker in the same loop; per phase the longest stall and the 99th percentile of its "
        f"lateness, the worst of {args.runs} runs for the repeated phases. Target: no stall over "
        f"{TARGET_MS:g} ms.",
        "",
        "| phase | longest stall ms, per run | p99 ms (worst run) | phase s | over target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, runs in results.items():
        worst = max(runs, key=lambda r: r["max_ms"])
        over = "**yes**" if worst["max_ms"] > TARGET_MS else "no"
        per_run = ", ".join(f"{r['max_ms']:.1f}" for r in runs)
        lines.append(
            f"| {name} | {per_run} | {max(r['p99_ms'] for r in runs):.1f} | "
            f"{max(r['seconds'] for r in runs):.2f} | {over} |"
        )
    write("loop_lag", result, lines)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
