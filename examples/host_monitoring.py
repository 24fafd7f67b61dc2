"""A long query on a writer whose network goes silent: cut short by host monitoring, then failed over.

    .venv/bin/python examples/host_monitoring.py [--engine mysql]

A black hole (no RST, no FIN) is what a failing Aurora instance often looks like to a client: the
socket stays open and a query waits on it until TCP gives up, many minutes later. Two connections run
the same long report; the writer is black-holed and the cluster fails over:

- with aurora_async (``host_monitoring`` is on by default) the call fails within about 1.5 s, the
  connection moves to the new writer, and the report is re-run there;
- a plain asyncpg (or aiomysql) connection is still waiting when the example stops watching it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _engines import ENGINES, close, plain_connect, row, terminate

import aurora_async
from aurora_async.testing import AuroraSimulator

REPORT = {
    "postgresql": "SELECT pg_sleep(3), count(*) FROM pg_class",
    "mysql": "SELECT SLEEP(3), COUNT(*) FROM information_schema.tables",
}
WATCH_PLAIN_FOR = 8.0


async def main(engine: str, watch_plain: float = WATCH_PLAIN_FOR) -> None:
    driver = "aiomysql" if engine == "mysql" else "asyncpg"
    async with AuroraSimulator(engine=engine, instances=3) as sim:
        conn: Any = await aurora_async.connect(
            sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern
        )
        plain = await plain_connect(sim)
        try:
            ours = asyncio.ensure_future(row(conn, REPORT[engine]))
            theirs = asyncio.ensure_future(row(plain, REPORT[engine]))
            await asyncio.sleep(0.5)
            print("The writer (11) goes silent: a black hole, then Aurora fails over.")
            silent = time.monotonic()
            await sim.blackhole("11")
            failover = asyncio.ensure_future(sim.failover())
            try:
                await ours
            except aurora_async.FailoverSuccessError as exc:
                print(
                    f"aurora_async: cut short after {time.monotonic() - silent:.1f} s "
                    f"({type(exc.__cause__).__name__}), now on {conn.instance.instance_id}; "
                    "re-running the report"
                )
            done_row = await row(conn, REPORT[engine])
            print(f"aurora_async: report done on {conn.instance.instance_id} ({done_row[1]} rows counted)")
            await failover
            done, _ = await asyncio.wait([theirs], timeout=watch_plain - (time.monotonic() - silent))
            waited = time.monotonic() - silent
            state = "finished?!" if done else "still waiting on the silent socket"
            print(f"plain {driver}: after {waited:.1f} s {state}")
            theirs.cancel()
        finally:
            terminate(plain)
            await close(conn)
        await asyncio.gather(theirs, return_exceptions=True)
    print("Cluster stopped and removed.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    parser.add_argument("--watch-plain", type=float, default=WATCH_PLAIN_FOR, help="seconds")
    args = parser.parse_args()
    asyncio.run(main(args.engine, args.watch_plain))
