"""Failover: from the promotion of the new writer to each worker's first successful write on it.

    .venv/bin/python benchmarks/bench_failover.py [--runs 5] [--connections 1 200]

Each run starts a fresh 3-instance simulated cluster (``FailoverDelays(promotion=1.0)``: the writer is
dead for a second before a replica is promoted, as failure detection takes time on Aurora too), opens
N ``aurora_async.connect()`` connections through the writer cluster endpoint, and has each write a row
every 100 ms, retrying on ``FailoverSuccessError`` / ``TransactionResolutionUnknownError``. Mid-run the
writer dies. For every worker we take its first successful write on the new writer and measure it
from the simulator's "replica promoted" step (and from "topology updated", when the catalog first names
the new writer). Runs for the different connection counts are interleaved. Writes
``benchmarks/results/failover.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from typing import Any

import asyncpg
from _common import command, commit, firsts_after_failover, header, latency_stats, machine, write

import aurora_async
from aurora_async.testing import AuroraSimulator, FailoverDelays

PAUSE = 0.1
INSERT = "INSERT INTO beats(worker) VALUES ($1)"
DELAYS = FailoverDelays(promotion=1.0)


async def insert(conn: aurora_async.AuroraConnection, worker: int) -> None:
    await conn.execute(INSERT, worker)


async def one_run(connections: int) -> dict[str, Any]:
    async with AuroraSimulator(instances=3, delays=DELAYS) as sim:
        setup = await aurora_async.connect(sim.dsn("cluster"), plugins=())
        await setup.execute("CREATE TABLE beats(id bigserial PRIMARY KEY, worker int)")
        await setup.close()
        options = {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 30}
        opening = (aurora_async.connect(sim.dsn("cluster"), **options) for _ in range(connections))
        conns = await asyncio.gather(*opening)
        try:
            report, firsts = await firsts_after_failover(sim, conns, insert, PAUSE)
        finally:
            await asyncio.gather(*(c.close() for c in conns))
        steps = {e.step: e.at for e in report.events}
        promoted, named = steps["replica promoted"], steps["topology updated"]
        return {
            "recovered": len(firsts),
            "after_promotion": [t - promoted for t in firsts.values()],
            "after_topology": [t - named for t in firsts.values()],
            "floor": await connect_and_write(sim.dsn(sim.writer_id), connections),
        }


async def connect_and_write(dsn: str, connections: int) -> list[float]:
    """The machine's floor: seconds until each of ``connections`` plain asyncpg connections, all opened
    at once to the new writer's own endpoint, has written its first row (no failover involved)."""
    started = time.monotonic()

    async def one(name: int) -> tuple[asyncpg.Connection, float]:
        conn = await asyncpg.connect(dsn)
        await conn.execute(INSERT, name)
        return conn, time.monotonic() - started

    done = await asyncio.gather(*(one(k) for k in range(connections)))
    for conn, _ in done:
        await conn.close()
    return [seconds for _, seconds in done]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 200])
    args = parser.parse_args()
    pooled: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    per_run: dict[int, list[dict[str, float]]] = defaultdict(list)
    for run in range(args.runs):
        for n in args.connections:
            outcome = await one_run(n)
            if outcome["recovered"] < n:
                raise SystemExit(f"only {outcome['recovered']} of {n} workers wrote to the new writer")
            for key in ("after_promotion", "after_topology", "floor"):
                pooled[n][key] += outcome[key]
            per_run[n].append(latency_stats(outcome["after_promotion"]))
            print(f"run {run + 1}/{args.runs}, {n} connections: {per_run[n][-1]}", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "failover",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "delays": DELAYS.__dict__,
        "seconds": {
            str(n): {key: latency_stats(values) for key, values in sides.items()} | {"runs": per_run[n]}
            for n, sides in pooled.items()
        },
    }
    lines = [
        *header("Failover: promotion to first successful write", result),
        f"{args.runs} runs per connection count, interleaved; every worker's first write on the new writer, "
        "pooled over the runs. Spread: the p95 of each run.",
        "",
        "| connections | workers × runs | p50 | p95 | max | p95 per run | p50 after topology update "
        "| floor: p50 / p95 |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for n, sides in pooled.items():
        s = latency_stats(sides["after_promotion"])
        t = latency_stats(sides["after_topology"])
        f = latency_stats(sides["floor"])
        runs = ", ".join(f"{r['p95'] * 1000:.0f}" for r in per_run[n])
        cells = [f"{s[k] * 1000:.0f} ms" for k in ("p50", "p95", "max")]
        floor = f"{f['p50'] * 1000:.0f} / {f['p95'] * 1000:.0f} ms"
        lines.append(
            f"| {n} | {s['n']} | {' | '.join(cells)} | {runs} | {t['p50'] * 1000:.0f} ms | {floor} |"
        )
    lines += [
        "",
        f"The simulator names the new writer in its catalog {DELAYS.topology * 1000:.0f} ms after promoting "
        "it (`FailoverDelays.topology`); no client can verify the writer before that. Floor: in the same "
        "run, after the failover, the same number of plain asyncpg connections opened at once straight to "
        "the new writer's endpoint, each writing one row: what opening that many connections costs this "
        "machine (client and servers share its CPUs), with no failover logic at all.",
    ]
    write("failover", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
