"""Custom endpoints: how many reader choices and failovers leave the endpoint's instances.

    .venv/bin/python benchmarks/bench_custom_endpoint.py [--engine postgresql] [--choices 970] [--failovers 6]

A simulated cluster of three (11 the writer, 12 and 13 replicas) and a custom endpoint ``two`` of type
ANY holding 11 and 12. Two sides run side by side in one run, on the same cluster and the same faults:

- ``custom endpoint``: connections made through the endpoint's address with ``custom_endpoint="two"``
  and ``custom_endpoint_members="11,12"`` (the members given, as without AWS access);
- ``today``: the same connections, through a second endpoint with the same members, without those
  options (what the library did before: the endpoint is just an address, and every later instance
  choice ignores it).

Both use ``failover_mode="reader_or_writer"`` and ``read_write_splitting``. Reader choices: a new
connection through the endpoint with ``read_only=True`` (connect, then a reader chosen by
``reader_host_selector_strategy=random``), asked which instance it is on, closed. Failovers: five
long-lived connections per side; after each of ``--failovers`` real failovers of the simulator
(targets cycling over 12, 13, 11) each one runs a query, fails over if its instance went away, and is
asked where it is. Every answer is the server's own (``aurora_db_instance_identifier()`` /
``@@server_id``); an answer outside {11, 12} counts as having left the endpoint. Writes
``benchmarks/results/custom-endpoint.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import command, commit, header, machine, write

import aurora_async
from aurora_async.testing import AuroraSimulator

MEMBERS = {"11", "12"}
LONG_LIVED = 5
TARGETS = ["12", "13", "11"]


async def where(conn: Any, sql: str, engine: str) -> str:
    if engine == "postgresql":
        return str(await conn.fetchval(sql))
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return str(row[0])


async def asked(conn: Any, sql: str, engine: str) -> tuple[str, bool]:
    """Where the session is, and whether it failed over to answer."""
    try:
        return await where(conn, sql, engine), False
    except aurora_async.FailoverSuccessError:
        return await where(conn, sql, engine), True


async def close(conn: Any) -> None:
    await (conn.close() if isinstance(conn, aurora_async.AuroraConnection) else conn.ensure_closed())


async def run(engine: str, choices: int, failovers: int) -> dict[str, Any]:
    sql = (
        "SELECT pg_catalog.aurora_db_instance_identifier()"
        if engine == "postgresql"
        else "SELECT @@server_id"
    )
    async with AuroraSimulator(engine=engine, instances=3, dns_delay=0.2) as sim:
        # one endpoint per side, same members: each side's connects alternate over 11 and 12 alike
        await sim.add_custom_endpoint("two", members=sorted(MEMBERS), kind="ANY")
        await sim.add_custom_endpoint("two-today", members=sorted(MEMBERS), kind="ANY")
        dsn = {"custom endpoint": sim.dsn("two"), "today": sim.dsn("two-today")}
        common = {
            "cluster_instance_host_pattern": sim.instance_host_pattern,
            "failover_mode": "reader_or_writer",
            "plugins": "initial_connection,failover,read_write_splitting",
            "failover_timeout": 20,
        }
        sides = {
            "custom endpoint": {**common, "custom_endpoint": "two", "custom_endpoint_members": "11,12"},
            "today": common,
        }
        counts = {
            side: {"choices": 0, "choices_outside": 0, "failovers": 0, "failovers_outside": 0}
            for side in sides
        }
        seconds = {side: 0.0 for side in sides}
        long_lived = {
            side: [await aurora_async.connect(dsn[side], **options) for _ in range(LONG_LIVED)]
            for side, options in sides.items()
        }
        per_round = choices // (failovers + 1)
        try:
            for round_number in range(failovers + 1):
                todo = per_round if round_number < failovers else choices - per_round * failovers
                for _ in range(todo):
                    for side, options in sides.items():
                        started = time.perf_counter()
                        conn = await aurora_async.connect(dsn[side], read_only=True, **options)
                        try:
                            instance = await where(conn, sql, engine)
                        finally:
                            await close(conn)
                        seconds[side] += time.perf_counter() - started
                        counts[side]["choices"] += 1
                        counts[side]["choices_outside"] += instance not in MEMBERS
                if round_number == failovers:
                    break
                await sim.failover(target=TARGETS[round_number % len(TARGETS)])
                for side, conns in long_lived.items():
                    for conn in conns:
                        instance, moved = await asked(conn, sql, engine)
                        if moved:
                            counts[side]["failovers"] += 1
                            counts[side]["failovers_outside"] += instance not in MEMBERS
        finally:
            for conns in long_lived.values():
                for conn in conns:
                    await close(conn)
    return {"counts": counts, "seconds_in_choices": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    parser.add_argument("--choices", type=int, default=970, help="reader choices per side")
    parser.add_argument("--failovers", type=int, default=6, help="real failovers of the simulator")
    args = parser.parse_args()
    started = time.monotonic()
    measured = asyncio.run(run(args.engine, args.choices, args.failovers))
    result = {
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "engine": args.engine,
        **measured,
    }
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    lines = header("Custom endpoints: instance choices that leave the endpoint", result)
    lines += [
        f"Engine {args.engine}; cluster of 3 (11 writer, 12 and 13 replicas at the start); custom endpoint "
        f"`two` (ANY) = {{11, 12}}; {args.failovers} real failovers (targets cycling 12, 13, 11); "
        f"wall time {result['wall_seconds']} s.",
        "",
        "| side | reader choices | left the endpoint | failovers (5 long-lived connections) |"
        " left the endpoint | ms per reader choice |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for side, c in measured["counts"].items():
        total = c["choices"] + c["failovers"]
        ms = measured["seconds_in_choices"][side] / max(1, c["choices"]) * 1000
        lines.append(
            f"| {side} | {c['choices']} | {c['choices_outside']} | {c['failovers']} |"
            f" {c['failovers_outside']} | {ms:.1f} |"
        )
        result.setdefault("left_the_endpoint", {})[side] = (
            f"{c['choices_outside'] + c['failovers_outside']}/{total}"
        )
    lines += [
        "",
        'A reader choice or failover "left the endpoint" when the server answered from 13. With the '
        "custom endpoint option every choice stays on 11 and 12 (target: 0); without it, the library "
        "picks among all the cluster's readers, so 13 is chosen whenever it is a replica.",
    ]
    write("custom-endpoint", result, lines)


if __name__ == "__main__":
    main()
