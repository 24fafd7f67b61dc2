"""A blue/green switchover under writers, side by side: aurora_async with the ``bg`` plugin, the plain
driver, and the AWS Advanced Python Wrapper's ``aio`` wrapper with its ``bg`` plugin.

    .venv/bin/python benchmarks/bench_blue_green.py [--engine postgresql|mysql|both] [--runs 2]
        [--connections 50] [--pause 1.0]

Each run: a fresh simulated Aurora cluster (2 instances) with a ``beats`` table, a blue/green
deployment of it, then every contender at once, each in a process of its own
(``benchmarks/peers/contender.py``, the incumbent in ``benchmarks/.venv-peers``), each with
``--connections`` connections through the cluster endpoint writing one row every ``--pause`` seconds
(50 connections x 1 s: 50 requests a second per contender), recovering from errors as its users do
(aurora_async and the wrapper keep their connection after a failover error, the plain driver
reconnects). Once all of them write, the switchover runs (the simulator's sequence, 1.5 s of preparation,
DNS 3 s late); the writers go on for ``--after`` seconds (5) after it completed.

Per contender: failed requests (writes that raised), the longest pause per connection (the longest
gap between two successful writes that ends after the switchover began: p50 and max over the
connections), connections that did not write again, and writes lost: acknowledged writes missing from
green afterwards (must be 0), with the writes stored beyond the acknowledged ones (a failed write that
committed nonetheless). Writes ``benchmarks/results/blue_green.{json,md}``.
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

OURS = "initial_connection,aurora_connection_tracker,failover,host_monitoring,bg"
THEIRS = "initial_connection,aurora_connection_tracker,failover_v2,host_monitoring_v2,bg"
WORKER_BASE = {"aurora_async": 0, "plain": 1000, "aws_wrapper_aio": 2000}


def contenders(engine: Engine) -> dict[str, str]:
    """label -> the contender's name in ``contender.py``."""
    return {"aurora_async": "aurora_async", "plain": engine.baseline, "aws_wrapper_aio": "aws_wrapper_aio"}


async def stored_per_contender(sim: AuroraSimulator, engine: Engine) -> dict[int, int]:
    """Rows per writer number on the cluster the writer endpoint leads to now (green)."""
    sql = "SELECT worker, COUNT(*) FROM beats GROUP BY worker"
    if engine.name == "mysql":
        host, port = sim.cluster_endpoint.rsplit(":", 1)
        conn = await aiomysql.connect(host=host, port=int(port), user=engine.user, db=engine.database)
        async with conn.cursor() as cur:
            await cur.execute(sql)
            rows = list(await cur.fetchall())
        conn.close()
    else:
        pg = await asyncpg.connect(sim.dsn("cluster"))
        rows = [tuple(r) for r in await pg.fetch(sql)]
        await pg.close()
    return {int(w): int(n) for w, n in rows}


def outcome(events: list[list[Any]], connections: int, began: float, stop_at: float) -> dict[str, Any]:
    gaps, unrecovered = [], 0
    for worker in range(connections):
        done = sorted(t for t, w, ok in events if w == worker and ok)
        if not done or done[-1] < stop_at - 2.0:
            unrecovered += 1
            continue
        gaps.append(max((b - a for a, b in zip(done, done[1:], strict=False) if b > began), default=0.0))
    return {
        "failed_requests": sum(1 for e in events if not e[2]),
        "acknowledged": sum(1 for e in events if e[2]),
        "pause_p50": statistics.median(gaps) if gaps else None,
        "pause_max": max(gaps) if gaps else None,
        "unrecovered": unrecovered,
    }


async def one_run(engine: Engine, connections: int, pause: float, after: float) -> dict[str, Any]:
    async with AuroraSimulator(engine.name, instances=2, dns_delay=3.0, max_connections=600) as sim:
        await create_table(sim, engine, "beats", "worker int")
        deployment = await sim.create_blue_green()
        labels = contenders(engine)
        specs = {
            label: base_spec(sim, engine, name, "downtime")
            | {
                "connections": connections,
                "pause": pause,
                "worker_base": WORKER_BASE[label],
                "plugins": OURS if label == "aurora_async" else None,
                "wrapper_plugins": THEIRS if label == "aws_wrapper_aio" else None,
            }
            for label, name in labels.items()
        }
        results: dict[str, Any] = {}
        async with (
            contender_process(specs["aurora_async"]) as ours,
            contender_process(specs["plain"]) as plain,
            contender_process(specs["aws_wrapper_aio"]) as theirs,
        ):
            procs = {"aurora_async": ours, "plain": plain, "aws_wrapper_aio": theirs}
            ready: dict[str, bool] = {}
            for label, proc in procs.items():
                try:
                    await wait_ready(proc, specs[label])
                    ready[label] = True
                except ContenderFailed as exc:
                    results[label] = {"failed": str(exc)}
                    ready[label] = False
            await asyncio.sleep(2.0)  # steady state; the bg plugins read the metadata every second
            began = time.monotonic()
            report = await deployment.switchover()
            completed = time.monotonic()
            await asyncio.sleep(after)
            stop_at = time.monotonic()
            for label, proc in procs.items():
                if ready[label] and proc.stdin is not None:
                    try:
                        proc.stdin.write(b"stop\n")
                        await proc.stdin.drain()
                    except (ConnectionResetError, BrokenPipeError):
                        pass  # it exited already: finish() says why
            for label, proc in procs.items():
                if not ready[label]:
                    continue
                try:
                    result = await finish(proc, specs[label], 60)
                except ContenderFailed as exc:
                    results[label] = {"failed": str(exc)}
                    continue
                results[label] = outcome(result["events"], connections, began, stop_at) | {
                    "hung": result["hung"]
                }
        stored = await stored_per_contender(sim, engine)
        for label in labels:
            if "failed" in results.get(label, {"failed": ""}):
                continue
            base = WORKER_BASE[label]
            rows = sum(n for w, n in stored.items() if base <= w < base + connections)
            results[label] |= {"stored": rows, "lost": max(0, results[label]["acknowledged"] - rows)}
        steps = {e.step: round(e.at - began, 3) for e in report.events}
    print(f"{engine.name}: {results}", file=sys.stderr)
    return {"results": results, "switchover_s": round(completed - began, 3), "steps": steps}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--after", type=float, default=5.0, help="seconds of writes after the switchover")
    args = parser.parse_args()
    engines = ["postgresql", "mysql"] if args.engine == "both" else [args.engine]
    result: dict[str, Any] = {"command": command(), "commit": commit(), "machine": machine(), "engines": {}}
    for name in engines:
        result["engines"][name] = [
            await one_run(ENGINES[name], args.connections, args.pause, args.after) for _ in range(args.runs)
        ]
    lines = [
        *header("A blue/green switchover under writers", result),
        f"Per contender {args.connections} connections through the cluster endpoint, one write every "
        f"{args.pause:g} s each, all contenders at once through one switchover per run (1.5 s of "
        "preparation, DNS 3 s late). *failed*: writes that raised; *pause*: per connection, the longest gap "
        "between two successful writes ending after the switchover began (p50 / max over connections); "
        "*lost*: acknowledged writes missing on green (must be 0); *stored*: rows on green, against "
        "*acknowledged*.",
        "",
        "| engine | run | contender | failed | pause p50 / max s | not writing again | acknowledged | stored "
        "| lost |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, runs in result["engines"].items():
        for k, run in enumerate(runs, 1):
            for label, r in run["results"].items():
                if "failed" in r:
                    lines.append(f"| {engine} | {k} | {label} | did not run: {r['failed']} | | | | | |")
                    continue
                pause = (
                    f"{r['pause_p50']:.2f} / {r['pause_max']:.2f}" if r["pause_p50"] is not None else "none"
                )
                lines.append(
                    f"| {engine} | {k} | {label} | {r['failed_requests']} | {pause} | {r['unrecovered']} | "
                    f"{r['acknowledged']} | {r['stored']} | {r['lost']} |"
                )
    write("blue_green", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
