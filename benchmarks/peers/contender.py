"""One contender, one workload, in a process of its own: run by ``bench_peers.py``.

    python contender.py '<json spec>'   ->   one JSON object on stdout

The spec names the contender (``aurora_async``, ``asyncpg``, ``asyncpg_multihost``, ``aws_wrapper_aio``,
``aws_wrapper_sync``), the workload (``latency``, ``connect``, ``downtime``) and the simulated
cluster's endpoints. This file imports only what its contender needs, so it runs both in the project's
venv (aurora_async, asyncpg) and in ``benchmarks/.venv-peers`` (the AWS Advanced Python Wrapper, whose
botocore pin conflicts with aioboto3). Timestamps are ``time.monotonic()``: CLOCK_MONOTONIC, the same
clock in every process of the machine, so the parent can line them up with the faults it injected.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

WARMUP = 50
INSERT = "INSERT INTO beats(worker) VALUES ({worker})"
INSERT_TX = "INSERT INTO items(worker, note) VALUES ({worker}, 'x')"
FETCH_100 = "SELECT g, 'row ' || g FROM generate_series(1, 100) g"


class Session:
    """The few operations a workload needs, over whichever driver the contender uses."""

    async def select1(self) -> None:
        raise NotImplementedError

    async def fetch100(self) -> None:
        raise NotImplementedError

    async def insert_tx(self, worker: int) -> None:
        raise NotImplementedError

    async def write(self, worker: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class AsyncpgSession(Session):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def select1(self) -> None:
        await self.conn.fetchval("SELECT 1")

    async def fetch100(self) -> None:
        rows = await self.conn.fetch(FETCH_100)
        assert len(rows) == 100

    async def insert_tx(self, worker: int) -> None:
        async with self.conn.transaction():
            await self.conn.execute(INSERT_TX.format(worker=worker))

    async def write(self, worker: int) -> None:
        await self.conn.execute(INSERT.format(worker=worker))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.conn.close(), 2)
        except Exception:
            self.conn.terminate()


class WrapperAioSession(Session):
    """The incumbent's ``aio`` wrapper on psycopg's AsyncConnection, autocommit on."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _run(self, sql: str) -> list[Any]:
        async with self.conn.cursor() as cur:
            await cur.execute(sql)
            return await cur.fetchall() if cur.description else []

    async def select1(self) -> None:
        await self._run("SELECT 1")

    async def fetch100(self) -> None:
        assert len(await self._run(FETCH_100)) == 100

    async def insert_tx(self, worker: int) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(INSERT_TX.format(worker=worker))
            await cur.execute("COMMIT")

    async def write(self, worker: int) -> None:
        await self._run(INSERT.format(worker=worker))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.conn.close(), 2)
        except Exception:
            pass


class WrapperSyncSession(Session):
    """The incumbent's sync wrapper on psycopg (blocking calls: latency at 1 connection only)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _run(self, sql: str) -> list[Any]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    async def select1(self) -> None:
        self._run("SELECT 1")

    async def fetch100(self) -> None:
        assert len(self._run(FETCH_100)) == 100

    async def insert_tx(self, worker: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(INSERT_TX.format(worker=worker))
            cur.execute("COMMIT")

    async def write(self, worker: int) -> None:
        self._run(INSERT.format(worker=worker))

    async def close(self) -> None:
        self.conn.close()


def opener(spec: dict[str, Any]) -> Callable[[], Awaitable[Session]]:
    """How this contender opens one connection, as its users would."""
    name, cluster, pattern = spec["contender"], spec["cluster"], spec["pattern"]
    user, database, timeout = spec["user"], spec["database"], spec["timeout"]
    host, port = cluster.rsplit(":", 1)
    if name == "aurora_async":
        import aurora_async  # noqa: PLC0415 - only in this contender's venv

        dsn = f"postgresql://{user}@{cluster}/{database}"

        async def open_aurora() -> Session:
            conn = await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern, timeout=timeout)
            return AsyncpgSession(conn)

        return open_aurora
    if name in ("asyncpg", "asyncpg_multihost"):
        import asyncpg  # noqa: PLC0415 - only in this contender's venv

        if name == "asyncpg":
            dsn = f"postgresql://{user}@{cluster}/{database}"
        else:  # every instance listed, the driver picks the one that accepts writes
            hosts = ",".join(pattern.split(":")[0].replace("?", i) + f":{port}" for i in spec["instance_ids"])
            dsn = f"postgresql://{user}@{hosts}/{database}?target_session_attrs=read-write"

        async def open_asyncpg() -> Session:
            # a command_timeout, as careful asyncpg users set: without one a black-holed writer hangs
            conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=spec["command_timeout"])
            return AsyncpgSession(conn)

        return open_asyncpg
    conninfo = f"host={host} port={port} dbname={database} user={user} connect_timeout={int(timeout)}"
    wrapper_options = {"wrapper_dialect": "aurora-pg", "cluster_instance_host_pattern": pattern}
    if name == "aws_wrapper_aio":
        from aws_advanced_python_wrapper.aio.psycopg import connect as wrapper_connect  # noqa: PLC0415 - only in this contender's venv

        async def open_wrapper_aio() -> Session:
            conn = await wrapper_connect(conninfo, autocommit=True, **wrapper_options)
            return WrapperAioSession(conn)

        return open_wrapper_aio
    if name == "aws_wrapper_sync":
        import psycopg  # noqa: PLC0415 - only in this contender's venv
        from aws_advanced_python_wrapper import AwsWrapperConnection  # noqa: PLC0415 - only in this contender's venv

        async def open_wrapper_sync() -> Session:
            conn = AwsWrapperConnection.connect(
                psycopg.Connection.connect, conninfo, autocommit=True, **wrapper_options
            )
            return WrapperSyncSession(conn)

        return open_wrapper_sync
    raise SystemExit(f"unknown contender {name!r}")


async def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """``ops`` operations of one kind on each of ``connections`` connections, all at once."""
    open_one, kind, ops = opener(spec), spec["kind"], spec["ops"]
    sessions = [await open_one() for _ in range(spec["connections"])]
    samples: list[float] = []

    async def run(session: Session, worker: int, count: int, record: bool) -> None:
        op: Callable[[], Awaitable[None]]
        if kind == "select1":
            op = session.select1
        elif kind == "fetch100":
            op = session.fetch100
        else:

            def op() -> Awaitable[None]:
                return session.insert_tx(worker)

        for _ in range(count):
            started = time.perf_counter()
            await op()
            if record:
                samples.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(run(s, w, WARMUP, False) for w, s in enumerate(sessions)))
        began = time.perf_counter()
        await asyncio.gather(*(run(s, w, ops, True) for w, s in enumerate(sessions)))
        wall = time.perf_counter() - began
    finally:
        for session in sessions:
            await session.close()
    samples.sort()
    return {
        "ops_per_s": len(samples) / wall,
        "p50_us": statistics.median(samples) * 1e6,
        "p95_us": samples[int(len(samples) * 0.95)] * 1e6,
    }


async def connect_time(spec: dict[str, Any]) -> dict[str, Any]:
    """Open a connection, run ``SELECT 1``, close it: ``ops`` times in a row."""
    open_one = opener(spec)
    samples = []
    for _ in range(spec["ops"]):
        started = time.perf_counter()
        session = await open_one()
        await session.select1()
        samples.append(time.perf_counter() - started)
        await session.close()
    samples.sort()
    return {"p50_ms": statistics.median(samples) * 1e3, "p95_ms": samples[int(len(samples) * 0.95)] * 1e3}


async def downtime(spec: dict[str, Any]) -> dict[str, Any]:
    """``connections`` workers each write a row every ``pause`` seconds until a line arrives on stdin,
    recovering from errors the way this contender's users do; every outcome is time-stamped."""
    open_one, pause, name = opener(spec), spec["pause"], spec["contender"]
    events: list[list[Any]] = []  # [monotonic time, worker, ok]
    stop, everyone = asyncio.Event(), asyncio.Event()
    started: set[int] = set()

    async def worker(me: int) -> None:
        session: Session | None = None
        while not stop.is_set():
            try:
                if session is None:
                    session = await open_one()
                await session.write(me)
                events.append([time.monotonic(), me, True])
                started.add(me)
                if len(started) == spec["connections"]:
                    everyone.set()
            except Exception as exc:
                events.append([time.monotonic(), me, False])
                moved = type(exc).__name__ in ("FailoverSuccessError", "TransactionResolutionUnknownError")
                if session is not None and not (moved and name.startswith(("aurora", "aws"))):
                    await session.close()  # the others reconnect, as their users' loops do
                    session = None
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass
        if session is not None:
            await session.close()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    workers = [asyncio.ensure_future(worker(i)) for i in range(spec["connections"])]

    await asyncio.wait_for(everyone.wait(), 60)
    print(json.dumps({"ready": time.monotonic()}), flush=True)
    await reader.readline()
    stop.set()
    done, hung = await asyncio.wait(workers, timeout=spec["timeout"] + 5)
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    return {"events": events, "hung": len(hung)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    workload = {"latency": latency, "connect": connect_time, "downtime": downtime}[spec["workload"]]
    result = asyncio.run(workload(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
