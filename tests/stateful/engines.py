"""What differs between PostgreSQL (asyncpg) and MySQL (aiomysql) in the stateful test: how an identity
becomes connect options, how a connection says who it is, how a unit of work, a read and an API call
after a broken idle connection are written, and how the database is inspected from outside (sessions,
stored units) on connections of its own, straight to each server (the fault proxies bypassed).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiomysql
import asyncpg
import pymysql

import aurora_async
from aurora_async import FailoverError, FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async.testing import AuroraSimulator

from . import _internals
from .model import PARTS, USERS, Identity

RETRYABLE = (FailoverSuccessError, TransactionResolutionUnknownError)
FAILOVER_TIMEOUT = 8.0  # every connection's failover_timeout (a failover here takes about a second)
CHECK_TIMEOUT = 5.0
PLUGINS = (
    "initial_connection",
    "aurora_connection_tracker",
    "failover",
    "host_monitoring",
    "read_write_splitting",
)

Inject = Callable[[int], Awaitable[None]]
Cut = Callable[[], Awaitable[None]]


class AppAbort(Exception):
    """The application gives up its unit of work (the transaction must roll back)."""


@dataclass
class Seen:
    """What a connection says about itself."""

    user: str
    instance: str
    pid: int  # backend pid / connection id
    marker: str  # what tells this session from a later one with the same pid: backend_start / HOST
    search_path: str | None = None
    application_name: str | None = None
    ssl: bool | None = None
    autocommit: bool | None = None
    sql_mode: frozenset[str] | None = None


@dataclass(frozen=True)
class Session:
    """A server session of one of the test's database users, seen from outside."""

    instance: str
    pid: int
    user: str
    marker: str
    application_name: str | None = None
    ssl: bool | None = None


@dataclass(frozen=True)
class UnitSpec:
    uid: str
    tag: str
    style: str
    inner: str
    end: str
    outer: bool


async def statement(run: Callable[[], Awaitable[Any]], inner: str) -> None:
    """One statement inside a transaction, with the application's inner habit around it."""
    if inner == "none":
        await run()
    elif inner == "swallow":
        try:
            await run()
        except aurora_async.TransactionResolutionUnknownError:
            pass  # the application catches the transaction's failover error and carries on with it
        except aurora_async.FailoverSuccessError:
            # the statement is to be re-run (the error's contract): dropping it would be the
            # application's own partial work (e.g. MySQL's first statement with autocommit off, before
            # which no transaction was open), which no library can see
            await run()
    elif inner == "retry":
        await aurora_async.retry_on_failover(run, attempts=3)()
    elif inner == "attempts":
        async for attempt in aurora_async.attempts_of(attempts=3):
            async with attempt:
                await run()
    else:
        raise ValueError(f"unknown inner habit {inner!r}")


async def with_outer_retry(spec: UnitSpec, one: Callable[[int], Awaitable[str]]) -> str:
    """Run ``one(attempt_number)``; with ``spec.outer``, again after a failover error."""
    if not spec.outer:
        return await one(1)
    result = ""
    async for attempt in aurora_async.attempts_of(attempts=3, deadline=3 * FAILOVER_TIMEOUT):
        async with attempt as state:
            result = await one(state.number)
    return result


class Ops(Protocol):
    engine: str

    def is_bare(self, exc: BaseException) -> bool:
        """A driver's lost-connection error that is not a failover error: the facade must turn it into one
        (a failover error is also the driver's lost-connection class, so that is not enough to tell)."""
        ...

    def options(
        self, ident: Identity, tag: str, password: str | None, secret_id: str | None, **extra: Any
    ) -> dict[str, Any]: ...

    def raw_of(self, handle: Any) -> Any: ...

    def pid_of(self, raw: Any) -> int | None: ...

    async def whoami(self, handle: Any) -> Seen: ...

    def mismatches(self, seen: Seen, ident: Identity, tag: str) -> list[str]: ...

    async def unit(self, conn: Any, spec: UnitSpec, ident: Identity, inject: Inject) -> str: ...

    async def read(self, conn: Any, api: str) -> None: ...

    async def idle_break(self, conn: Any, api: str, cut: Cut) -> None: ...

    async def ping(self, conn: Any) -> None: ...

    async def busy(self, conn: Any) -> None: ...

    async def close(self, handle: Any, kind: str, how: str) -> None: ...


class Checker(Protocol):
    async def setup(self) -> None: ...

    async def sessions(self) -> list[Session]: ...

    async def ledger(self, prefix: str) -> dict[str, tuple[int, int]]: ...

    async def kill_sessions(self) -> int:
        """End every session of the test's users (what a failed run leaked), so that the next run on
        the same cluster starts clean; how many there were."""
        ...

    async def close(self) -> None: ...


def _host_port(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.rsplit(":", 1)
    return host, int(port)


# -- PostgreSQL ---------------------------------------------------------------------------------------

PG_INSERT = "INSERT INTO public.units(unit, part, conn) VALUES ($1, $2, $3)"
PG_INSERT_ALL = (
    "INSERT INTO public.units(unit, part, conn) SELECT $1, g, $2 FROM generate_series(0, $3 - 1) AS g"
)
PG_READ_BACK = "SELECT count(*) FROM public.units WHERE unit = $1"
PG_WHOAMI = (
    "SELECT current_user::text, current_setting('search_path'), current_setting('application_name'), "
    "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), pg_backend_pid(), "
    "(SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()), "
    "pg_catalog.aurora_db_instance_identifier()"
)
PG_SESSIONS = (
    "SELECT a.pid, a.usename::text, a.backend_start::text, a.application_name, s.ssl "
    "FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid) "
    "WHERE a.backend_type = 'client backend' AND a.usename = ANY($1::text[])"
)


class PgOps:
    engine = "postgresql"

    def is_bare(self, exc: BaseException) -> bool:
        return not isinstance(exc, FailoverError) and isinstance(
            exc,
            asyncpg.InterfaceError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.PostgresConnectionError
            | asyncpg.exceptions.InternalClientError
            | ConnectionError,
        )

    def __init__(self, sim: AuroraSimulator, moto_endpoint: str) -> None:
        self.sim = sim
        self.moto_endpoint = moto_endpoint

    def options(
        self, ident: Identity, tag: str, password: str | None, secret_id: str | None, **extra: Any
    ) -> dict[str, Any]:
        host, port = _host_port(self.sim.cluster_endpoint)
        options: dict[str, Any] = {
            "host": host,
            "port": port,
            "database": "postgres",
            "cluster_instance_host_pattern": self.sim.instance_host_pattern,
            "failover_timeout": FAILOVER_TIMEOUT,
            "plugins": PLUGINS,
            "ssl": ident.ssl,
            "server_settings": {"search_path": ident.search_path or "", "application_name": tag},
        }
        if ident.secret is not None:
            options["plugins"] = (*PLUGINS, "aws_secrets_manager")
            options.update(
                secrets_manager_secret_id=secret_id,
                secrets_manager_region="us-east-1",
                secrets_manager_endpoint=self.moto_endpoint,
            )
        else:
            options.update(user=ident.user, password=password)
        options.update(extra)
        return options

    def raw_of(self, handle: Any) -> Any:
        return handle if isinstance(handle, asyncpg.Connection) else handle.raw

    def pid_of(self, raw: Any) -> int | None:
        try:
            pid = raw.get_server_pid()
        except AttributeError:  # asyncpg forgets its protocol once the connection is gone
            return None
        return int(pid) if pid else None

    async def whoami(self, handle: Any) -> Seen:
        row = await handle.fetchrow(PG_WHOAMI, timeout=CHECK_TIMEOUT)
        return Seen(
            user=row[0],
            search_path=row[1],
            application_name=row[2],
            ssl=row[3],
            pid=row[4],
            marker=row[5] or "",
            instance=row[6],
        )

    def mismatches(self, seen: Seen, ident: Identity, tag: str) -> list[str]:
        wrong = []
        if seen.user != ident.user:
            wrong.append(f"current_user {seen.user!r}, expected {ident.user!r}")
        if seen.search_path != ident.search_path:
            wrong.append(f"search_path {seen.search_path!r}, expected {ident.search_path!r}")
        if seen.application_name != tag:
            wrong.append(f"application_name {seen.application_name!r}, expected {tag!r}")
        if bool(seen.ssl) != ident.tls:
            wrong.append(f"TLS {'on' if seen.ssl else 'off'}, expected ssl={ident.ssl!r}")
        return wrong

    async def unit(self, conn: Any, spec: UnitSpec, ident: Identity, inject: Inject) -> str:
        uid, tag = spec.uid, spec.tag

        def insert(part: int) -> Callable[[], Awaitable[Any]]:
            return functools.partial(conn.execute, PG_INSERT, uid, part, tag)

        if spec.style == "stmt":
            await inject(0)
            for attempt in range(3):
                try:
                    await conn.execute(PG_INSERT_ALL, uid, tag, PARTS)
                    return "committed"
                except FailoverSuccessError as exc:  # re-run it, unless it may have run and did
                    if attempt == 2:
                        raise
                    if exc.may_have_run and await conn.fetchval(PG_READ_BACK, uid):
                        return "committed"
            raise AssertionError("unreachable")

        async def one(number: int) -> str:
            first = number == 1
            if spec.style == "manual":
                tx = conn.transaction()
                await tx.start()
                try:
                    if not first and await conn.fetchval(PG_READ_BACK, uid):
                        await tx.commit()
                        return "committed"
                    for k in range(PARTS):
                        if first:
                            await inject(k)
                        await statement(insert(k), spec.inner)
                    if first:
                        await inject(PARTS)
                except BaseException:
                    await tx.rollback()
                    raise
                if spec.end == "abort":
                    await tx.rollback()
                    return "rolled_back"
                await tx.commit()
                return "committed"
            try:
                async with conn.transaction():
                    if not first and await conn.fetchval(PG_READ_BACK, uid):
                        return "committed"
                    for k in range(PARTS):
                        if first:
                            await inject(k)
                        if spec.style == "nested" and k == 1:
                            async with conn.transaction():  # a savepoint around the rest
                                for j in range(1, PARTS):
                                    if first and j > 1:
                                        await inject(j)
                                    await statement(insert(j), spec.inner)
                            break
                        await statement(insert(k), spec.inner)
                    if first:
                        await inject(PARTS)
                    if spec.end == "abort":
                        raise AppAbort
            except AppAbort:
                return "rolled_back"
            return "committed"

        return await with_outer_retry(spec, one)

    async def read(self, conn: Any, api: str) -> None:
        async for attempt in aurora_async.attempts_of(attempts=3):
            async with attempt:
                if api == "fetch":
                    await conn.fetch("SELECT unit, part FROM public.units ORDER BY unit DESC LIMIT 5")
                elif api == "cursor":
                    async with conn.transaction():
                        async for _ in conn.cursor("SELECT unit FROM public.units LIMIT 5", prefetch=2):
                            pass
                elif api == "prepare":
                    prepared = await conn.prepare("SELECT count(*) FROM public.units")
                    await prepared.fetchval()
                else:
                    raise ValueError(f"unknown read {api!r}")

    async def idle_break(self, conn: Any, api: str, cut: Cut) -> None:
        if api == "cursor_in_tx":
            async with conn.transaction():
                await conn.fetchval("SELECT 1")
                await cut()
                async for _ in conn.cursor("SELECT generate_series(1, 3)"):
                    pass
            return
        await cut()
        if api == "execute":
            await conn.execute("SELECT 1")
        elif api == "fetchval":
            await conn.fetchval("SELECT 1")
        elif api == "transaction":
            async with conn.transaction():
                await conn.fetchval("SELECT 1")
        elif api == "prepare":
            await conn.prepare("SELECT 1")
        else:
            raise ValueError(f"unknown API {api!r}")

    async def ping(self, conn: Any) -> None:
        await conn.fetchval("SELECT 1")

    async def busy(self, conn: Any) -> None:
        await conn.fetchval("SELECT pg_sleep(0.05)")

    async def close(self, handle: Any, kind: str, how: str) -> None:
        if how == "terminate" and kind != "pool":
            handle.terminate()
        else:
            await handle.close()


class PgChecker:
    """Superuser connections straight to each server (not through the fault proxies)."""

    def __init__(self, sim: AuroraSimulator) -> None:
        self.sim = sim
        self._conns: dict[str, asyncpg.Connection] = {}

    async def _query(self, instance: str, sql: str, *args: Any) -> list[Any]:
        for attempt in range(2):
            conn = self._conns.get(instance)
            try:
                if conn is None or conn.is_closed():
                    host, port = _host_port(self.sim.server_endpoint(instance))
                    conn = await asyncpg.connect(
                        host=host, port=port, user="postgres", database="postgres", ssl="disable", timeout=5
                    )
                    self._conns[instance] = conn
                rows: list[Any] = await conn.fetch(sql, *args, timeout=CHECK_TIMEOUT)
                return rows
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if conn is not None:
                    conn.terminate()
                self._conns.pop(instance, None)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def setup(self) -> None:
        for sql in (
            "CREATE TABLE IF NOT EXISTS public.units(unit text NOT NULL, part int NOT NULL, "
            "conn text NOT NULL)",
            "CREATE INDEX IF NOT EXISTS units_unit ON public.units(unit)",
            "GRANT SELECT, INSERT ON public.units TO PUBLIC",
        ):
            await self._query(self.sim.writer_id, sql)

    async def sessions(self) -> list[Session]:
        found = []
        for instance in self.sim.instance_ids:
            for row in await self._query(instance, PG_SESSIONS, list(USERS)):
                found.append(Session(instance, row[0], row[1], row[2] or "", row[3], row[4]))
        return found

    async def ledger(self, prefix: str) -> dict[str, tuple[int, int]]:
        rows = await self._query(
            self.sim.writer_id,
            "SELECT unit, count(*), count(DISTINCT part) FROM public.units WHERE unit LIKE $1 GROUP BY unit",
            prefix + "%",
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def kill_sessions(self) -> int:
        killed = 0
        for instance in self.sim.instance_ids:
            rows = await self._query(
                instance,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1::text[])",
                list(USERS),
            )
            killed += len(rows)
        return killed

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.terminate()


# -- MySQL --------------------------------------------------------------------------------------------

MY_INSERT = "INSERT INTO units(unit, part, conn) VALUES (%s, %s, %s)"
MY_INSERT_ALL = "INSERT INTO units(unit, part, conn) VALUES " + ", ".join(["(%s, %s, %s)"] * PARTS)
MY_READ_BACK = "SELECT COUNT(*) FROM units WHERE unit = %s"
MY_WHOAMI = (
    "SELECT CURRENT_USER(), @@session.autocommit, @@session.sql_mode, CONNECTION_ID(), "
    "(SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()), @@aurora_server_id"
)
# aiomysql's and pymysql's client-side errors for a lost connection
_MY_LOST = frozenset({2003, 2006, 2013, 2055})


class MyOps:
    engine = "mysql"

    def is_bare(self, exc: BaseException) -> bool:
        if isinstance(exc, FailoverError):
            return False
        if isinstance(exc, pymysql.err.InterfaceError | ConnectionError):
            return True
        return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] in _MY_LOST

    def __init__(self, sim: AuroraSimulator, moto_endpoint: str) -> None:
        self.sim = sim
        self.moto_endpoint = moto_endpoint

    def options(
        self, ident: Identity, tag: str, password: str | None, secret_id: str | None, **extra: Any
    ) -> dict[str, Any]:
        host, port = _host_port(self.sim.cluster_endpoint)
        options: dict[str, Any] = {
            "engine": "mysql",
            "host": host,
            "port": port,
            "db": "app",
            "cluster_instance_host_pattern": self.sim.instance_host_pattern,
            "failover_timeout": FAILOVER_TIMEOUT,
            "plugins": PLUGINS,
            "sql_mode": ident.sql_mode,
        }
        if ident.autocommit is not None:
            options["autocommit"] = ident.autocommit
        if ident.secret is not None:
            options["plugins"] = (*PLUGINS, "aws_secrets_manager")
            options.update(
                secrets_manager_secret_id=secret_id,
                secrets_manager_region="us-east-1",
                secrets_manager_endpoint=self.moto_endpoint,
            )
        else:
            options.update(user=ident.user, password=password)
        options.update(extra)
        return options

    def raw_of(self, handle: Any) -> Any:
        return handle if isinstance(handle, aiomysql.Connection) else handle.raw

    def pid_of(self, raw: Any) -> int | None:
        thread = raw.server_thread_id
        return int(thread[0]) if thread else None

    async def whoami(self, handle: Any) -> Seen:
        cur = await handle.cursor()
        try:
            await cur.execute(MY_WHOAMI)
            row = await cur.fetchone()
        finally:
            await cur.close()
        return Seen(
            user=str(row[0]).split("@", 1)[0],
            autocommit=bool(row[1]),
            sql_mode=frozenset(m for m in str(row[2]).split(",") if m),
            pid=int(row[3]),
            marker=str(row[4] or ""),
            instance=str(row[5]),
        )

    def mismatches(self, seen: Seen, ident: Identity, tag: str) -> list[str]:
        wrong = []
        if seen.user != ident.user:
            wrong.append(f"CURRENT_USER() {seen.user!r}, expected {ident.user!r}")
        if seen.autocommit != ident.autocommit_on:
            wrong.append(f"@@autocommit {int(bool(seen.autocommit))}, expected {int(ident.autocommit_on)}")
        expected_modes = frozenset((ident.sql_mode or "").split(",")) - {""}
        if seen.sql_mode != expected_modes:
            wrong.append(f"sql_mode {','.join(sorted(seen.sql_mode or ()))!r}, expected {ident.sql_mode!r}")
        return wrong

    async def unit(self, conn: Any, spec: UnitSpec, ident: Identity, inject: Inject) -> str:
        uid, tag = spec.uid, spec.tag
        cur = await conn.cursor()

        def insert(part: int) -> Callable[[], Awaitable[Any]]:
            return functools.partial(cur.execute, MY_INSERT, (uid, part, tag))

        async def read_back() -> int:
            await cur.execute(MY_READ_BACK, (uid,))
            row = await cur.fetchone()
            return int(row[0])

        try:
            if spec.style == "stmt":
                await inject(0)
                rows = tuple(v for part in range(PARTS) for v in (uid, part, tag))
                for attempt in range(3):
                    try:
                        await cur.execute(MY_INSERT_ALL, rows)
                        if not ident.autocommit_on:
                            await conn.commit()
                        return "committed"
                    except FailoverSuccessError as exc:
                        if attempt == 2:
                            raise
                        if exc.may_have_run and await read_back():
                            return "committed"
                raise AssertionError("unreachable")

            async def one(number: int) -> str:
                first = number == 1
                if spec.style == "begin":
                    await conn.begin()
                try:
                    if not first and await read_back():
                        await conn.commit()
                        return "committed"
                    for k in range(PARTS):
                        if first:
                            await inject(k)
                        await statement(insert(k), spec.inner)
                    if first:
                        await inject(PARTS)
                    if spec.end == "abort":
                        await conn.rollback()
                        return "rolled_back"
                    await conn.commit()
                    return "committed"
                except BaseException:
                    try:
                        await conn.rollback()  # what an application does before it re-raises
                    except Exception:
                        pass
                    raise

            return await with_outer_retry(spec, one)
        finally:
            try:
                await cur.close()
            except Exception:
                pass

    async def read(self, conn: Any, api: str) -> None:
        async for attempt in aurora_async.attempts_of(attempts=3):
            async with attempt:
                if api == "ping":
                    await conn.ping()
                else:
                    classes = (aiomysql.DictCursor,) if api == "dict_cursor" else ()
                    async with conn.cursor(*classes) as cur:
                        await cur.execute("SELECT unit, part FROM units ORDER BY unit DESC LIMIT 5")
                        await cur.fetchall()
        if not conn.get_autocommit():
            await conn.rollback()  # end the read's implicit transaction, as an application would

    async def idle_break(self, conn: Any, api: str, cut: Cut) -> None:
        if api == "commit_in_tx":
            await conn.begin()
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
            await cut()
            await conn.commit()
            return
        if api == "execute":
            cur = await conn.cursor()
            await cut()
            try:
                await cur.execute("SELECT 1")
            finally:
                await cur.close()
        elif api == "cursor":
            await cut()
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        elif api == "begin":
            await cut()
            await conn.begin()
            await conn.rollback()
        elif api == "ping":
            await cut()
            await conn.ping()
        else:
            raise ValueError(f"unknown API {api!r}")

    async def ping(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
        if not conn.get_autocommit():
            await conn.rollback()

    async def busy(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(0.05)")

    async def close(self, handle: Any, kind: str, how: str) -> None:
        if kind == "raw":
            handle.close()
        elif how == "close":
            handle.close()  # aiomysql's synchronous close
        else:
            await handle.ensure_closed()


class MyChecker:
    """Per user (none of them may see another's sessions) and per instance, a connection straight to
    the server; the DSN's user for the stored units."""

    def __init__(self, sim: AuroraSimulator, password: Callable[[str], str]) -> None:
        self.sim = sim
        self.password = password
        self._conns: dict[tuple[str, str], Any] = {}

    async def _query(self, instance: str, user: str, sql: str, args: Any = None) -> list[Any]:
        for attempt in range(2):
            key = (instance, user)
            conn = self._conns.get(key)
            try:
                if conn is None or conn.closed:
                    host, port = _host_port(self.sim.server_endpoint(instance))
                    async with asyncio.timeout(5):
                        conn = await aiomysql.connect(
                            host=host,
                            port=port,
                            user=user,
                            password="" if user == "admin" else self.password(user),
                            db="app",
                            autocommit=True,  # every query sees what is committed now
                        )
                    self._conns[key] = conn
                async with asyncio.timeout(CHECK_TIMEOUT), conn.cursor() as cur:
                    await cur.execute(sql, args)
                    return list(await cur.fetchall())
            except (OSError, TimeoutError, pymysql.err.MySQLError):
                if conn is not None:
                    conn.close()
                self._conns.pop(key, None)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def setup(self) -> None:
        exists = await self._query(
            self.sim.writer_id,
            "admin",
            "SELECT COUNT(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'units'",
        )
        if not exists[0][0]:  # (CREATE TABLE IF NOT EXISTS warns, and warnings are errors here)
            await self._query(
                self.sim.writer_id,
                "admin",
                "CREATE TABLE units(unit varchar(64) NOT NULL, part int NOT NULL, conn varchar(32) NOT NULL, "
                "KEY (unit)) ENGINE=InnoDB",
            )

    async def sessions(self) -> list[Session]:
        found = []
        for instance in self.sim.instance_ids:
            for user in USERS:
                rows = await self._query(
                    instance,
                    user,
                    "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
                )
                found += [Session(instance, int(r[0]), str(r[1]), str(r[2])) for r in rows]
        return found

    async def ledger(self, prefix: str) -> dict[str, tuple[int, int]]:
        rows = await self._query(
            self.sim.writer_id,
            "admin",
            "SELECT unit, COUNT(*), COUNT(DISTINCT part) FROM units WHERE unit LIKE %s GROUP BY unit",
            (prefix + "%",),
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    async def kill_sessions(self) -> int:
        killed = 0
        for session in await self.sessions():  # each user may end its own sessions
            try:
                await self._query(session.instance, session.user, f"KILL CONNECTION {session.pid}")
                killed += 1
            except pymysql.err.MySQLError:
                pass  # gone meanwhile
        return killed

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()


def physical_raws(ops: Ops, handle: Any, kind: str) -> list[Any]:
    """The application's physical connections behind an open object (see ``_internals``)."""
    if kind == "raw":
        return [handle]
    if kind == "pool":
        return [r for member in _internals.pool_members(handle) for r in physical_raws(ops, member, "conn")]
    raws = [ops.raw_of(handle)]
    spare = _internals.spare(handle)
    if spare is not None:
        raws.append(spare[0])
    return raws
