"""Behind an RDS Proxy: a crash failover under 50 writers, as the application sees it.

    .venv/bin/python benchmarks/bench_rds_proxy.py [--rounds 3] [--writers 50]

Each side gets its own simulated PostgreSQL cluster with the simulator's RDS Proxy endpoint
(``proxy=True``). 50 tasks each insert rows through the proxy (one connection each, an idempotent
insert every 10 ms); after 0.5 s the writer crashes and a replica is promoted. Sides:

- ``proxy mode``: ``aurora_async.connect(proxy, rds_proxy=True, statement_cache_size=0)``;
- ``proxy mode, statement cache``: the same with asyncpg's default named statements, which pin every
  connection to its backend, so the proxy closes all of them;
- ``asyncpg``: plain ``asyncpg.connect(proxy, statement_cache_size=0)``, reconnecting to the proxy
  and retrying after any connection error, as applications do;
- ``around the proxy``: ``aurora_async`` with ``rds_proxy=False`` and the instance host pattern, as
  the library behaved before proxy mode: it reads the topology through the proxy, then fails over
  and probes straight to the instances.

Per side: errors the application saw, each writer's longest gap between two successful inserts
(its downtime), rows acknowledged vs stored, and connections that went around the proxy. The sides
run in a different order each round. Writes ``benchmarks/results/rds-proxy.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from _common import command, commit, header, machine, percentile, summary, write

import aurora_async
from aurora_async import FailoverError
from aurora_async.testing import AuroraSimulator

INSERT = "INSERT INTO ledger VALUES ($1) ON CONFLICT (id) DO NOTHING"
PACE = 0.01
BEFORE, AFTER = 0.5, 2.0  # seconds of writing before the crash, and after the failover ends


class Writer:
    """One application task's record: when its inserts succeeded, and the errors it saw."""

    def __init__(self) -> None:
        self.ok: list[float] = []
        self.errors = 0
        self.acknowledged: set[int] = set()

    def gap(self, since: float) -> float:
        times = [t for t in self.ok if t >= since - 1.0]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))


Run = Callable[[AuroraSimulator, int, Writer, asyncio.Event], Coroutine[Any, Any, None]]


async def _aurora(sim: AuroraSimulator, first: int, rec: Writer, stop: asyncio.Event, **opts: Any) -> None:
    conn = await aurora_async.connect(sim.dsn("proxy"), engine="postgresql", failover_timeout=30, **opts)
    try:
        row = first
        while not stop.is_set():
            try:
                await conn.execute(INSERT, row)
            except FailoverError:
                rec.errors += 1
                continue  # (FailoverFailedError included: the same connection tries again)
            rec.ok.append(time.monotonic())
            rec.acknowledged.add(row)
            row += 1
            await asyncio.sleep(PACE)
    finally:
        await conn.close()


async def _plain(sim: AuroraSimulator, first: int, rec: Writer, stop: asyncio.Event) -> None:
    dsn = sim.dsn("proxy")
    conn: asyncpg.Connection | None = await asyncpg.connect(dsn, statement_cache_size=0)
    row = first
    try:
        while not stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(dsn, statement_cache_size=0, timeout=5)
                await conn.execute(INSERT, row)
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                rec.errors += 1
                if conn is not None:
                    conn.terminate()
                conn = None
                await asyncio.sleep(0.05)
                continue
            rec.ok.append(time.monotonic())
            rec.acknowledged.add(row)
            row += 1
            await asyncio.sleep(PACE)
    finally:
        if conn is not None:
            await conn.close()


SIDES: dict[str, Run] = {
    "proxy mode": lambda s, f, r, e: _aurora(s, f, r, e, rds_proxy=True, statement_cache_size=0),
    "proxy mode, statement cache": lambda s, f, r, e: _aurora(s, f, r, e, rds_proxy=True),
    "asyncpg": _plain,
    "around the proxy": lambda s, f, r, e: _aurora(
        s, f, r, e, rds_proxy=False, cluster_instance_host_pattern=s.instance_host_pattern
    ),
}


async def one(side: str, writers: int) -> dict[str, Any]:
    async with AuroraSimulator(instances=3, proxy=True) as sim:
        setup = await asyncpg.connect(sim.dsn(sim.writer_id))
        await setup.execute("CREATE TABLE ledger(id bigint PRIMARY KEY)")
        await setup.close()
        status = await sim.proxy_status()
        before = sum(x["accepted"] for x in status["listeners"].values())  # the set-up connection's
        stop = asyncio.Event()
        records = [Writer() for _ in range(writers)]
        tasks = [
            asyncio.create_task(SIDES[side](sim, k * 1_000_000, rec, stop)) for k, rec in enumerate(records)
        ]
        await asyncio.sleep(BEFORE)
        crashed = time.monotonic()
        await sim.failover()
        await asyncio.sleep(AFTER)
        stop.set()
        await asyncio.gather(*tasks)
        status = await sim.proxy_status()
        accepted = sum(x["accepted"] for x in status["listeners"].values()) - before
        proxy = status["rds_proxies"]["proxy"]
        check = await asyncpg.connect(sim.dsn(sim.writer_id))
        stored = {r["id"] for r in await check.fetch("SELECT id FROM ledger")}
        await check.close()
        acknowledged = set().union(*(r.acknowledged for r in records))
        gaps = [r.gap(crashed) for r in records]
        return {
            "errors": sum(r.errors for r in records),
            "writers_with_errors": sum(1 for r in records if r.errors),
            "gap_p50": percentile(gaps, 0.5),
            "gap_max": max(gaps),
            "acknowledged": len(acknowledged),
            "lost": len(acknowledged - stored),
            "around_the_proxy": accepted - proxy["backends"],
            "moved_by_proxy": proxy["reattached"],
            "closed_by_proxy": proxy["dropped"],
        }


def page(result: dict[str, Any]) -> list[str]:
    lines = header("A crash failover behind an RDS Proxy", result)
    lines += [
        f"{result['writers']} writers, one insert each every {PACE * 1000:g} ms through the simulator's "
        f"RDS Proxy endpoint, the writer crashed after {BEFORE:g} s; {result['rounds']} rounds, sides in a "
        "different order each round. Median (min-max) over the rounds. Downtime: each writer's longest "
        "gap between two acknowledged inserts around the failover (p50 and max over the writers).",
        "",
        "| side | errors seen | writers with errors | downtime p50 s | downtime max s | acknowledged lost "
        "| connections around the proxy | moved / closed by the proxy |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(runs: list[dict[str, Any]], key: str, fmt: str = "{:.0f}") -> str:
        stats = summary([float(r[key]) for r in runs])
        return f"{fmt.format(stats['median'])} ({fmt.format(stats['min'])}-{fmt.format(stats['max'])})"

    for side, runs in result["sides"].items():
        lines.append(
            f"| {side} | {cell(runs, 'errors')} | {cell(runs, 'writers_with_errors')} | "
            f"{cell(runs, 'gap_p50', '{:.2f}')} | {cell(runs, 'gap_max', '{:.2f}')} | "
            f"{sum(r['lost'] for r in runs)} | {cell(runs, 'around_the_proxy')} | "
            f"{cell(runs, 'moved_by_proxy')} / {cell(runs, 'closed_by_proxy')} |"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("aurora_async").setLevel(logging.ERROR)
    names = list(SIDES)
    sides: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for side in order:
            sides[side].append(await one(side, args.writers))
            print(side, sides[side][-1], flush=True)
    result = {
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "rounds": args.rounds,
        "writers": args.writers,
        "sides": sides,
    }
    write("rds-proxy", result, page(result))


if __name__ == "__main__":
    asyncio.run(main())
