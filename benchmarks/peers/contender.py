"""One contender, one workload, in a process of its own: run by ``bench_peers.py``.

    python contender.py '<json spec>'   ->   one JSON object on stdout

The spec names the engine (``postgresql``, ``mysql``), the contender (``aurora_async``, ``asyncpg``,
``asyncpg_multihost``, ``aiomysql``, ``aws_wrapper_aio``, ``aws_wrapper_sync``), the workload
(``latency``, ``connect``, ``downtime``) and the simulated cluster's endpoints. This file imports only
what its contender needs, so it runs both in the project's venv (aurora_async, asyncpg, aiomysql) and in
``benchmarks/.venv-peers`` (the AWS Advanced Python Wrapper, whose botocore pin conflicts with aioboto3).
Timestamps are ``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every process of the machine, so
the parent can line them up with the faults it injected.
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
FETCH_100 = {
    "postgresql": "SELECT g, 'row ' || g FROM generate_series(1, 100) g",
    "mysql": "SELECT seq, CONCAT('row ', seq) FROM seq_1_to_100",  # MariaDB's sequence engine
}
WRAPPER_DIALECT = {"postgresql": "aurora-pg", "mysql": "aurora-mysql"}


class Session:
    """The few operations a workload needs, over whichever driver the contender uses."""

    def __init__(self, conn: Any, engine: str) -> None:
        self.conn = conn
        self.fetch_sql = FETCH_100[engine]

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
    async def select1(self) -> None:
        await self.conn.fetchval("SELECT 1")

    async def fetch100(self) -> None:
        rows = await self.conn.fetch(self.fetch_sql)
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
    """The incumbent's ``aio`` wrapper (on psycopg's AsyncConnection or on aiomysql), autocommit on."""

    async def _execute(self, cur: Any, sql: str) -> None:
        await cur.execute(sql)

    async def _run(self, sql: str) -> list[Any]:
        async with self.conn.cursor() as cur:
            await self._execute(cur, sql)
            return list(await cur.fetchall()) if cur.description else []

    async def select1(self) -> None:
        await self._run("SELECT 1")

    async def fetch100(self) -> None:
        assert len(await self._run(self.fetch_sql)) == 100

    async def insert_tx(self, worker: int) -> None:
        async with self.conn.cursor() as cur:
            for sql in ("BEGIN", INSERT_TX.format(worker=worker), "COMMIT"):
                await self._execute(cur, sql)

    async def write(self, worker: int) -> None:
        await self._run(INSERT.format(worker=worker))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.conn.close(), 2)
        except Exception:
            pass


class AiomysqlSession(WrapperAioSession):
    """aiomysql's API (plain aiomysql, or aurora_async's AuroraMySQLConnection), autocommit on,
    transactions by ``begin()`` / ``commit()``. ``timeout``: an ``asyncio.wait_for`` around every call,
    as careful aiomysql users add (the driver has no statement timeout)."""

    def __init__(self, conn: Any, engine: str, timeout: float | None = None) -> None:
        super().__init__(conn, engine)
        self.timeout = timeout

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        return await (call if self.timeout is None else asyncio.wait_for(call, self.timeout))

    async def _execute(self, cur: Any, sql: str) -> None:
        await self._bounded(cur.execute(sql))

    async def insert_tx(self, worker: int) -> None:
        await self._bounded(self.conn.begin())
        async with self.conn.cursor() as cur:
            await self._execute(cur, INSERT_TX.format(worker=worker))
        await self._bounded(self.conn.commit())

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.conn.ensure_closed(), 2)
        except Exception:
            self.conn.close()


class WrapperSyncSession(Session):
    """The incumbent's sync wrapper on psycopg (blocking calls: latency at 1 connection only)."""

    def _run(self, sql: str) -> list[Any]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    async def select1(self) -> None:
        self._run("SELECT 1")

    async def fetch100(self) -> None:
        assert len(self._run(self.fetch_sql)) == 100

    async def insert_tx(self, worker: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(INSERT_TX.format(worker=worker))
            cur.execute("COMMIT")

    async def write(self, worker: int) -> None:
        self._run(INSERT.format(worker=worker))

    async def close(self) -> None:
        self.conn.close()


Opener = Callable[[], Awaitable[Session]]


def userinfo(spec: dict[str, Any]) -> str:
    """``user`` or ``user:password`` for a DSN (``password``: optional, letters and digits only)."""
    return f"{spec['user']}:{spec['password']}" if spec.get("password") else str(spec["user"])


def aurora_async_opener(spec: dict[str, Any]) -> Opener:
    import aurora_async  # noqa: PLC0415 - only in this contender's venv

    engine = spec["engine"]
    dsn = f"{engine}://{userinfo(spec)}@{spec['cluster']}/{spec['database']}"
    options = {"cluster_instance_host_pattern": spec["pattern"], "timeout": spec["timeout"]}
    if spec.get("plugins"):
        options["plugins"] = spec["plugins"]
    options |= spec.get("aurora_options") or {}  # anything else the benchmark sets

    async def open_aurora() -> Session:
        if engine == "mysql":
            return AiomysqlSession(await aurora_async.connect(dsn, autocommit=True, **options), engine)
        return AsyncpgSession(await aurora_async.connect(dsn, **options), engine)

    return open_aurora


def asyncpg_opener(spec: dict[str, Any]) -> Opener:
    import asyncpg  # noqa: PLC0415 - only in this contender's venv

    user, cluster, database = userinfo(spec), spec["cluster"], spec["database"]
    if spec["contender"] == "asyncpg":
        dsn = f"postgresql://{user}@{cluster}/{database}"
    else:  # every instance listed, the driver picks the one that accepts writes
        port = cluster.rsplit(":", 1)[1]
        hosts = ",".join(
            spec["pattern"].split(":")[0].replace("?", i) + f":{port}" for i in spec["instance_ids"]
        )
        dsn = f"postgresql://{user}@{hosts}/{database}?target_session_attrs=read-write"

    async def open_asyncpg() -> Session:
        # a command_timeout, as careful asyncpg users set: without one a black-holed writer hangs
        conn = await asyncpg.connect(dsn, timeout=spec["timeout"], command_timeout=spec["command_timeout"])
        return AsyncpgSession(conn, "postgresql")

    return open_asyncpg


def aiomysql_opener(spec: dict[str, Any]) -> Opener:
    import aiomysql  # noqa: PLC0415 - only in this contender's venv

    host, port = spec["cluster"].rsplit(":", 1)
    timeout = spec["timeout"]

    async def open_aiomysql() -> Session:
        # the whole connect bounded: aiomysql's connect_timeout covers only the TCP handshake
        connecting = aiomysql.connect(
            host=host,
            port=int(port),
            user=spec["user"],
            password=spec.get("password") or "",
            db=spec["database"],
            autocommit=True,
            connect_timeout=timeout,
        )
        conn = await asyncio.wait_for(connecting, timeout)
        # every statement bounded, like asyncpg's command_timeout: without it a black-holed writer hangs
        return AiomysqlSession(conn, "mysql", timeout=spec["command_timeout"])

    return open_aiomysql


def wrapper_options(spec: dict[str, Any]) -> dict[str, Any]:
    options = {
        "wrapper_dialect": WRAPPER_DIALECT[spec["engine"]],
        "cluster_instance_host_pattern": spec["pattern"],
    }
    if spec.get("wrapper_plugins"):
        options["plugins"] = spec["wrapper_plugins"]
    options |= spec.get("wrapper_options") or {}  # anything else the benchmark sets
    return options


def libpq_conninfo(spec: dict[str, Any]) -> str:
    host, port = spec["cluster"].rsplit(":", 1)
    database, user, timeout = spec["database"], spec["user"], int(spec["timeout"])
    password = f" password={spec['password']}" if spec.get("password") else ""
    return f"host={host} port={port} dbname={database} user={user}{password} connect_timeout={timeout}"


def wrapper_aio_opener(spec: dict[str, Any]) -> Opener:
    engine, options = spec["engine"], wrapper_options(spec) | {"autocommit": True}
    if engine == "mysql":
        from aws_advanced_python_wrapper.aio.aiomysql import connect  # noqa: PLC0415 - only in this contender's venv

        host, port = spec["cluster"].rsplit(":", 1)
        conninfo = ""
        options |= {"host": host, "port": int(port), "user": spec["user"], "database": spec["database"]}
        if spec.get("password"):
            options["password"] = spec["password"]
        options["connect_timeout"] = spec["timeout"]
    else:
        from aws_advanced_python_wrapper.aio.psycopg import connect  # noqa: PLC0415 - only in this contender's venv

        conninfo = libpq_conninfo(spec)

    async def open_wrapper_aio() -> Session:
        return WrapperAioSession(await connect(conninfo, **options), engine)

    return open_wrapper_aio


def wrapper_sync_opener(spec: dict[str, Any]) -> Opener:
    import psycopg  # noqa: PLC0415 - only in this contender's venv
    from aws_advanced_python_wrapper import AwsWrapperConnection  # noqa: PLC0415 - only in this contender's venv

    conninfo, options = libpq_conninfo(spec), wrapper_options(spec)

    async def open_wrapper_sync() -> Session:
        conn = AwsWrapperConnection.connect(psycopg.Connection.connect, conninfo, autocommit=True, **options)
        return WrapperSyncSession(conn, "postgresql")

    return open_wrapper_sync


OPENERS: dict[str, Callable[[dict[str, Any]], Opener]] = {
    "aurora_async": aurora_async_opener,
    "asyncpg": asyncpg_opener,
    "asyncpg_multihost": asyncpg_opener,
    "aiomysql": aiomysql_opener,
    "aws_wrapper_aio": wrapper_aio_opener,
    "aws_wrapper_sync": wrapper_sync_opener,
}


def opener(spec: dict[str, Any]) -> Opener:
    """How this contender opens one connection, as its users would."""
    if spec["contender"] not in OPENERS:
        raise SystemExit(f"unknown contender {spec['contender']!r}")
    return OPENERS[spec["contender"]](spec)


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
                await session.write(spec.get("worker_base", 0) + me)  # (rows tell contenders apart)
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

    try:
        await asyncio.wait_for(everyone.wait(), 60)
    except TimeoutError:
        wanted = spec["connections"]
        raise SystemExit(f"only {len(started)} of {wanted} connections wrote within 60 s") from None
    print(json.dumps({"ready": time.monotonic()}), flush=True)
    await reader.readline()
    stop.set()
    done, hung = await asyncio.wait(workers, timeout=spec["timeout"] + 5)
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    return {"events": events, "hung": len(hung)}


def main() -> None:
    spec = {"engine": "postgresql"} | json.loads(sys.argv[1])
    workload = {"latency": latency, "connect": connect_time, "downtime": downtime}[spec["workload"]]
    result = asyncio.run(workload(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
