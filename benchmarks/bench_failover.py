"""Failover: from the promotion of the new writer to each worker's first successful write on it.

    .venv/bin/python benchmarks/bench_failover.py [--runs 5] [--connections 1 200]

Each run starts a fresh 3-instance simulated cluster (``FailoverDelays(promotion=1.0)``: the writer is
dead for a second before a replica is promoted, as failure detection takes time on Aurora too), opens
N ``aurora_async.connect()`` connections through the writer cluster endpoint, and has each write a row
every 100 ms, retrying on ``FailoverSuccessError`` / ``TransactionResolutionUnknownError``. Mid-run the
writer dies. For every worker we take its first successful write on the new writer and measure it
from the simulator's "replica promoted" step (and from "topology updated", when the catalog first names
the new writer). Runs for the different connection counts are interleaved. The events stream
(``WriterSearchFinished``, ``FailoverSucceeded``) splits the time into the catalog's delay, the writer
search, the reconnects and the first statements. Two floors: plain asyncpg opening as many connections
at once straight to the new writer once everything settled (the machine's cost of so many connects), and
in a run of its own the same within a failover, told the new writer by an oracle the moment the catalog
names it (the best any client could do, sharing the CPUs with the simulator's failover). Writes
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
PARTS = ("catalog", "search", "reconnect", "statement")
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
        seen: list[aurora_async.Event] = []
        async with aurora_async.events(conns[0], buffer=10 * connections + 100) as stream:

            async def collect() -> None:
                async for event in stream:
                    seen.append(event)

            collector = asyncio.create_task(collect())
            try:
                report, firsts = await firsts_after_failover(sim, conns, insert, PAUSE)
            finally:
                collector.cancel()
                await asyncio.gather(collector, return_exceptions=True)
                await asyncio.gather(*(c.close() for c in conns))
        steps = {e.step: e.at for e in report.events}
        promoted, named = steps["replica promoted"], steps["topology updated"]
        wall = time.time() - time.monotonic()  # events carry time.time(); the rest time.monotonic()
        found = [
            e.at - wall
            for e in seen
            if isinstance(e, aurora_async.WriterSearchFinished) and e.writer and e.at - wall > promoted
        ]
        reconnected = sorted(
            e.at - wall
            for e in seen
            if isinstance(e, aurora_async.FailoverSucceeded) and e.at - wall > promoted
        )
        search_end = min(found) if found else named
        return {
            "recovered": len(firsts),
            "after_promotion": [t - promoted for t in firsts.values()],
            "after_topology": [t - named for t in firsts.values()],
            "floor": await connect_and_write(sim.dsn(sim.writer_id), connections),
            # where the time goes, from the promotion: the catalog naming the new writer (the
            # simulator's), the search proving it, each connection reconnected, each first write
            "breakdown": {
                "catalog": [named - promoted],
                "search": [search_end - named],
                "reconnect": [t - search_end for t in reconnected],
                "statement": _after(sorted(firsts.values()), reconnected),
            },
        }


async def oracle_run(connections: int) -> list[float]:
    """The floor within a failover: a fresh cluster fails over the same way, and plain asyncpg, told the
    new writer the moment the catalog names it (an oracle no client has: it polls the simulator's own
    state), opens ``connections`` connections at once straight to it and writes a row on each, while
    the simulator's failover goes on (re-pointing the other replica, the old writer rejoining).
    Seconds from the promotion to each write."""
    async with AuroraSimulator(instances=3, delays=DELAYS) as sim:
        setup = await aurora_async.connect(sim.dsn("cluster"), plugins=())
        await setup.execute("CREATE TABLE beats(id bigserial PRIMARY KEY, worker int)")
        await setup.close()
        old = sim.writer_id
        await asyncio.sleep(1.0)  # as the other runs: a second of steady state
        failing_over = asyncio.create_task(sim.failover())
        # the oracle: the simulator's own state (it has no event for it), polled every millisecond
        while sim.writer_id == old:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        await asyncio.sleep(DELAYS.topology)  # ... and the earliest a client can know: the catalog
        writes = await connect_and_write(sim.dsn(sim.writer_id), connections, clock_from=0.0)
        report = await failing_over
        promoted = {e.step: e.at for e in report.events}["replica promoted"]
        return [t - promoted for t in writes]


def _after(writes: list[float], reconnects: list[float]) -> list[float]:
    """Each first write's time after the reconnect of the same rank (both sorted: the k-th connection
    to reconnect is, to a close approximation, the k-th to write)."""
    return [w - r for w, r in zip(writes, reconnects, strict=False)]


async def connect_and_write(dsn: str, connections: int, clock_from: float | None = None) -> list[float]:
    """The machine's floor: seconds until each of ``connections`` plain asyncpg connections, all opened
    at once to the new writer's own endpoint, has written its first row (no failover involved); with
    ``clock_from``, the ``time.monotonic()`` of each write minus it."""
    started = time.monotonic() if clock_from is None else clock_from

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
            for part, values in outcome["breakdown"].items():
                pooled[n][f"breakdown {part}"] += values
            pooled[n]["oracle"] += await oracle_run(n)
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
        "| floor: p50 / p95 | floor within a failover: p50 / p95 |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for n, sides in pooled.items():
        s = latency_stats(sides["after_promotion"])
        t = latency_stats(sides["after_topology"])
        f = latency_stats(sides["floor"])
        runs = ", ".join(f"{r['p95'] * 1000:.0f}" for r in per_run[n])
        cells = [f"{s[k] * 1000:.0f} ms" for k in ("p50", "p95", "max")]
        floor = f"{f['p50'] * 1000:.0f} / {f['p95'] * 1000:.0f} ms"
        o = latency_stats(sides["oracle"])
        oracle = f"{o['p50'] * 1000:.0f} / {o['p95'] * 1000:.0f} ms"
        row = [str(n), str(s["n"]), *cells, runs, f"{t['p50'] * 1000:.0f} ms", floor, oracle]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Where the time goes (p50 / p95, ms, pooled): *catalog*, promotion until the simulator's catalog "
        "names the new writer; *search*, until the writer search proved it; *reconnect*, until each "
        "connection was on it (`FailoverSucceeded`); *statement*, until each first write returned.",
        "",
        "| connections | catalog | search | reconnect | statement |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, sides in pooled.items():
        parts = [
            latency_stats(sides[f"breakdown {p}"]) for p in ("catalog", "search", "reconnect", "statement")
        ]
        lines.append(
            f"| {n} | " + " | ".join(f"{p['p50'] * 1000:.0f} / {p['p95'] * 1000:.0f}" for p in parts) + " |"
        )
    lines += [
        "",
        f"The simulator names the new writer in its catalog {DELAYS.topology * 1000:.0f} ms after promoting "
        "it (`FailoverDelays.topology`); no client can verify the writer before that. Floor: in the same "
        "run, after the failover, the same number of plain asyncpg connections opened at once straight to "
        "the new writer's endpoint, each writing one row: what opening that many connections costs this "
        "machine (client and servers share its CPUs), with no failover logic at all. Floor within a "
        "failover: in a run of its own, interleaved, plain asyncpg told the new writer by an oracle the "
        "moment the catalog names it, opening as many connections at once straight to it and writing, "
        "while the simulator's failover goes on around it, from the promotion: the best any client "
        "could do.",
    ]
    write("failover", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
