"""Connecting to an auto-paused Aurora Serverless v2 instance: success rate and time to connect.

    .venv/bin/python benchmarks/bench_serverless_resume.py [--runs 3] [--resume-seconds 15]
        [--engines postgresql mysql]

A paused instance accepts TCP and holds the login until it has resumed, about 15 s after the first
connection attempt (``sim.pause(id, resume_seconds)``). Each round pauses a replica again before every
side and times one connect to its own endpoint, every side with its default timeouts:

- ``aurora_async``: ``connect_timeout`` 10 s, ``resume_timeout`` 30 s;
- ``aurora_async resume_timeout=0``: the behaviour before ``resume_timeout`` existed;
- ``asyncpg``: ``asyncpg.connect()``'s own default, ``timeout=60``; and ``asyncpg timeout=10``,
  the same connect timeout as aurora_async's;
- ``aiomysql``: ``aiomysql.connect()``'s default (its ``connect_timeout`` covers only the TCP connect,
  so the wait is unbounded), and ``aiomysql wait_for 10`` bounded at 10 s as applications do.

The sides alternate their order from round to round (A/B interleaved). Writes
``benchmarks/results/serverless-resume.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomysql
import asyncpg
from _common import command, commit, header, machine, summary, write

import aurora_async
from aurora_async.testing import AuroraSimulator

INSTANCE = "12"
Side = Callable[[AuroraSimulator], Awaitable[Any]]


async def _aurora(sim: AuroraSimulator, **extra: Any) -> Any:
    conn = await aurora_async.connect(
        sim.dsn(INSTANCE),
        cluster_instance_host_pattern=sim.instance_host_pattern,
        failover_mode="reader_or_writer",  # stay on the replica whose endpoint was given
        **extra,
    )
    if isinstance(conn, aurora_async.AuroraMySQLConnection):
        await conn.ensure_closed()
    else:
        await conn.close()


async def _asyncpg(sim: AuroraSimulator, **extra: Any) -> Any:
    conn = await asyncpg.connect(sim.dsn(INSTANCE), **extra)
    await conn.close()


async def _aiomysql(sim: AuroraSimulator, bound: float | None = None) -> Any:
    host, port = sim.endpoint(INSTANCE).rsplit(":", 1)
    async with asyncio.timeout(bound):
        conn = await aiomysql.connect(host=host, port=int(port), user="admin", db="app")
    conn.close()


def sides(engine: str) -> dict[str, Side]:
    common: dict[str, Side] = {
        "aurora_async": _aurora,
        "aurora_async resume_timeout=0": lambda sim: _aurora(sim, resume_timeout=0),
    }
    if engine == "postgresql":
        return common | {
            "asyncpg (timeout=60)": _asyncpg,
            "asyncpg timeout=10": lambda sim: _asyncpg(sim, timeout=10),
        }
    return common | {
        "aiomysql (no bound)": _aiomysql,
        "aiomysql wait_for 10": lambda sim: _aiomysql(sim, 10.0),
    }


async def measure(engine: str, runs: int, resume_seconds: float) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    async with AuroraSimulator(engine=engine, instances=2) as sim:
        named = list(sides(engine).items())
        for round_no in range(runs):
            shift = round_no % len(named)
            for name, side in named[shift:] + named[:shift]:
                await sim.pause(INSTANCE, resume_seconds=resume_seconds)
                started = time.monotonic()
                try:
                    await side(sim)
                    outcome = "ok"
                except Exception as exc:
                    outcome = type(exc).__name__
                seconds = time.monotonic() - started
                results.setdefault(name, []).append({"outcome": outcome, "seconds": seconds})
                print(f"{engine} round {round_no + 1}: {name}: {outcome} after {seconds:.2f} s", flush=True)
    return results


def page(result: dict[str, Any]) -> list[str]:
    lines = header("Connecting to an auto-paused Serverless v2 instance", result)
    lines += [
        f"The instance resumes {result['resume_seconds']:g} s after the first connection attempt "
        f"(`sim.pause`); {result['runs']} rounds, sides interleaved; every side with its default "
        "timeouts. Time: seconds from the connect call to its outcome (median, min-max).",
        "",
        "| engine | side | connected | median s | min-max s | failures |",
        "|---|---|---|---|---|---|",
    ]
    for engine, by_side in result["engines"].items():
        for name, attempts in by_side.items():
            ok = [a for a in attempts if a["outcome"] == "ok"]
            stats = summary([a["seconds"] for a in attempts])
            failures = sorted({a["outcome"] for a in attempts if a["outcome"] != "ok"})
            lines.append(
                f"| {engine} | {name} | {len(ok)}/{len(attempts)} | {stats['median']:.2f} | "
                f"{stats['min']:.2f}-{stats['max']:.2f} | {', '.join(failures) or '-'} |"
            )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resume-seconds", type=float, default=15.0)
    parser.add_argument("--engines", nargs="+", default=["postgresql", "mysql"])
    args = parser.parse_args()
    logging.getLogger("aurora_async").setLevel(logging.ERROR)  # the resume warning, once per side
    engines = {e: await measure(e, args.runs, args.resume_seconds) for e in args.engines}
    result = {
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "runs": args.runs,
        "resume_seconds": args.resume_seconds,
        "engines": engines,
    }
    write("serverless-resume", result, page(result))


if __name__ == "__main__":
    asyncio.run(main())
