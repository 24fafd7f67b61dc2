"""An Aurora Global Database's switchover and failover to another region under writers, side by side:
aurora_async (dialect ``global-aurora-pg`` / ``global-aurora-mysql``), the plain driver (asyncpg /
aiomysql) and the AWS Advanced Python Wrapper's ``aio`` wrapper with its ``gdb_failover`` plugin (in
``benchmarks/.venv-peers``), all through the global writer endpoint, on both engines.

    .venv/bin/python benchmarks/bench_global_database.py [--engine postgresql|mysql|both] [--runs 2]
        [--connections 50] [--pause 0.2]

Each run: a fresh simulated cluster (2 instances, us-east-1) with a ``beats`` table, a Global Database
with a secondary region (2 instances, eu-west-1), then the three contenders at once, each in a process
of its own (``benchmarks/peers/contender.py``), each with ``--connections`` connections through the
global writer endpoint writing a row every ``--pause`` seconds, recovering as their users do
(aurora_async keeps its connection after a failover error, the plain driver reconnects).

- *switchover*: ``GlobalDatabase.switchover()`` (no data loss); per connection, the time from the
  moment the primary region stopped taking writes to the connection's first successful write after it
  (necessarily in the new primary region): p50 and max; failed writes; writes lost (must be 0).
- *failover*: replication to the secondary is held for 1 s (an unreplicated tail), then
  ``failover(allow_data_loss=True)``; the same recovery times from the loss of the primary region,
  failed writes, and acknowledged writes missing afterwards: the tail an unplanned failover loses,
  which no client can be told about (they were acknowledged).

Writes ``benchmarks/results/global_database.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import aiomysql
import asyncpg
from _common import command, commit, header, machine, write
from bench_peers import (
    ENGINES,
    ContenderFailed,
    Engine,
    base_spec,
    contender_process,
    create_table,
    finish,
    wait_ready,
)

from aurora_async.testing import AuroraSimulator

WORKER_BASE = {"aurora_async": 0, "plain": 1000, "aws_wrapper_aio": 2000}
THEIRS = "initial_connection,aurora_connection_tracker,gdb_failover,host_monitoring_v2"
AFTER = 5.0  # seconds of writes after the move


def recovery(events: list[list[Any]], connections: int, moved_at: float, stop_at: float) -> dict[str, Any]:
    """Per connection: from ``moved_at`` to its first successful write after it."""
    times, never = [], 0
    for worker in range(connections):
        after = sorted(t for t, w, ok in events if w == worker and ok and t > moved_at)
        if not after or after[-1] < stop_at - 2.0:
            never += 1
            continue
        times.append(after[0] - moved_at)
    return {
        "failed_requests": sum(1 for e in events if not e[2]),
        "acknowledged": sum(1 for e in events if e[2]),
        "recovery_p50": statistics.median(times) if times else None,
        "recovery_max": max(times) if times else None,
        "not_writing_again": never,
    }


async def stored(engine: Engine, endpoint: str, dsn: str) -> dict[int, int]:
    """Rows per writer number where the global writer endpoint leads now."""
    sql = "SELECT worker, COUNT(*) FROM beats GROUP BY worker"
    if engine.name == "mysql":
        host, port = endpoint.rsplit(":", 1)
        my = await aiomysql.connect(host=host, port=int(port), user=engine.user, db=engine.database)
        try:
            async with my.cursor() as cur:
                await cur.execute(sql)
                rows = [tuple(r) for r in await cur.fetchall()]
        finally:
            my.close()
    else:
        pg = await asyncpg.connect(dsn)
        try:
            rows = [tuple(r) for r in await pg.fetch(sql)]
        finally:
            await pg.close()
    return {int(w): int(n) for w, n in rows}


async def one_run(engine: Engine, kind: str, connections: int, pause: float) -> dict[str, Any]:
    names = {"aurora_async": "aurora_async", "plain": engine.baseline, "aws_wrapper_aio": "aws_wrapper_aio"}
    async with AuroraSimulator(engine.name, instances=2, dns_delay=3.0, max_connections=600) as sim:
        await create_table(sim, engine, "beats", "worker int")
        gdb = await sim.create_global_database("eu-west-1")
        primary = f"{sim.region}:{sim.instance_host_pattern}"
        patterns = f"{primary},{gdb.secondary_region}:{gdb.secondary.instance_host_pattern}"
        specs = {
            label: base_spec(sim, engine, names[label], "downtime")
            | {
                "cluster": gdb.global_endpoint,
                "connections": connections,
                "pause": pause,
                "worker_base": WORKER_BASE[label],
                "aurora_options": {"global_cluster_instance_host_patterns": patterns, "failover_timeout": 60},
                "wrapper_plugins": THEIRS,
                "wrapper_options": {
                    "wrapper_dialect": f"global-aurora-{'mysql' if engine.name == 'mysql' else 'pg'}",
                    "global_cluster_instance_host_patterns": patterns,
                    "failover_home_region": sim.region,
                },
            }
            for label in WORKER_BASE
        }
        results: dict[str, Any] = {}
        async with (
            contender_process(specs["aurora_async"]) as ours,
            contender_process(specs["plain"]) as plain,
            contender_process(specs["aws_wrapper_aio"]) as theirs,
        ):
            procs = {"aurora_async": ours, "plain": plain, "aws_wrapper_aio": theirs}
            ready = set()
            for label, proc in procs.items():
                try:
                    await wait_ready(proc, specs[label])
                    ready.add(label)
                except ContenderFailed as exc:
                    results[label] = {"failed": str(exc)}
            await asyncio.sleep(2.0)
            if kind == "failover":
                await gdb.hold_replication()
                await asyncio.sleep(1.0)  # an unreplicated tail
                report = await gdb.failover(allow_data_loss=True)
                moved_at = next(e.at for e in report.events if e.step == "primary region lost")
            else:
                report = await gdb.switchover()
                moved_at = next(
                    e.at for e in report.events if e.step == "primary region stopped taking writes"
                )
            await sim.wait_dns_settled()
            await asyncio.sleep(AFTER)
            stop_at = time.monotonic()
            for label, proc in procs.items():
                if label in ready and proc.stdin is not None:
                    try:
                        proc.stdin.write(b"stop\n")
                        await proc.stdin.drain()
                    except (ConnectionResetError, BrokenPipeError):
                        pass
            for label, proc in procs.items():
                if label not in ready:
                    continue
                try:
                    result = await finish(proc, specs[label], 60)
                except ContenderFailed as exc:
                    results[label] = {"failed": str(exc)}
                    continue
                results[label] = recovery(result["events"], connections, moved_at, stop_at)
        rows = await stored(engine, gdb.global_endpoint, gdb.dsn())
        for label, base in WORKER_BASE.items():
            if "failed" in results[label]:
                continue
            kept = sum(n for w, n in rows.items() if base <= w < base + connections)
            results[label] |= {"stored": kept, "lost": max(0, results[label]["acknowledged"] - kept)}
    results = {(engine.baseline if label == "plain" else label): r for label, r in results.items()}
    print(f"{engine.name} {kind}: {results}", file=sys.stderr)
    return {"engine": engine.name, "kind": kind, "results": results}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()
    result: dict[str, Any] = {"command": command(), "commit": commit(), "machine": machine(), "runs": []}
    engines = ["postgresql", "mysql"] if args.engine == "both" else [args.engine]
    for _ in range(args.runs):
        for name in engines:
            for kind in ("switchover", "failover"):
                result["runs"].append(await one_run(ENGINES[name], kind, args.connections, args.pause))
    lines = [
        *header("A Global Database switchover and failover under writers", result),
        f"Per contender {args.connections} connections through the global writer endpoint, one write every "
        f"{args.pause:g} s each (DNS 3 s late). *recovery*: per connection, from the moment the primary "
        "region stopped taking writes (switchover) or was lost (failover) to its first successful write "
        "after it, p50 / max; *lost*: acknowledged writes missing afterwards (a failover's unreplicated "
        "tail: 1 s of writes held back from the secondary region).",
        "",
        "| engine | move | contender | failed | recovery p50 / max s | not writing again | acknowledged "
        "| stored | lost |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        for label, r in run["results"].items():
            if "failed" in r:
                lines.append(
                    f"| {run['engine']} | {run['kind']} | {label} | did not run: {r['failed']} | | | | | |"
                )
                continue
            rec = (
                f"{r['recovery_p50']:.2f} / {r['recovery_max']:.2f}"
                if r["recovery_p50"] is not None
                else "none"
            )
            lines.append(
                f"| {run['engine']} | {run['kind']} | {label} | {r['failed_requests']} | {rec} | "
                f"{r['not_writing_again']} | "
                f"{r['acknowledged']} | {r['stored']} | {r['lost']} |"
            )
    write("global_database", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
