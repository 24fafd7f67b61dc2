"""The PostgreSQL side of a simulated blue/green deployment: logical replication from the blue writer to
the green writer, as RDS does it for Aurora PostgreSQL, and the database steps of a switchover.

The green cluster is created empty (its own catalog, its own instances); what blue holds is copied in:
the login roles with their password verifiers and memberships, then, per database, the schema
(``pg_dump --schema-only``, without the simulator's own schemas) and the rows, through a subscription
to a ``FOR ALL TABLES`` publication on blue (``copy_data``). From then on every commit on blue reaches
green's writer, and green's replicas by streaming replication.

What logical replication does not carry is not carried here either, as on RDS: DDL (a table created on
blue after the deployment is not on green, and its rows stop the subscription), roles created later,
and sequences, whose values a switchover copies once writes have stopped. UPDATE and DELETE on a blue
table without a primary key (or replica identity) fail, as PostgreSQL's publications require.

A switchover's database steps: blue's writer stops taking writes (``default_transaction_read_only``, and
its client sessions are ended, so no transaction begun before stays writable), a marker row committed
on blue after that is awaited on green (then green has every earlier commit), the subscriptions are
dropped and their slots with them, sequences copied, and green's writer takes writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg

from .._catalog import BlueGreenHost
from .._errors import SimulatorError
from .._process import run_command, wait_until
from ._catalog import BLUE_GREEN_ROLE, SIMULATOR_SCHEMAS, set_blue_green_sql
from ._cluster import PASSWORD_LOGIN_ROLE, PostgresCluster
from ._server import PgServer, tool_env

Side = Literal["blue", "green"]
PUBLICATION = "aurora_sim_blue_green"
_SUBSCRIPTION_PREFIX = "aurora_sim_blue_green_"
_SYNC_TIMEOUT = 60.0
_ROLES_KEPT = ("postgres", PASSWORD_LOGIN_ROLE, BLUE_GREEN_ROLE)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PgBlueGreen:
    """Replication from ``blue``'s writer to ``green``'s writer, and the database steps of a switchover."""

    def __init__(self, blue: PostgresCluster, green: PostgresCluster) -> None:
        self.blue = blue
        self.green = green
        self._databases: list[str] = []
        self._blue_writer: PgServer | None = None
        self._green_writer: PgServer | None = None

    # -- set-up ----------------------------------------------------------------------------------

    async def replicate(self, blue_writer: str, green_writer: str) -> None:
        """Copy roles and schema from blue to green and start replicating every database's rows."""
        source, target = self.blue.server(blue_writer), self.green.server(green_writer)
        self._blue_writer, self._green_writer = source, target
        await self._copy_roles(source, target)
        conn = await source.connect()
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate "
                "ORDER BY datname"
            )
        finally:
            await conn.close()
        self._databases = [r["datname"] for r in rows]
        have = await target.connect()
        try:
            existing = {r["datname"] for r in await have.fetch("SELECT datname FROM pg_catalog.pg_database")}
            for database in self._databases:
                if database not in existing:
                    await have.execute(f"CREATE DATABASE {_ident(database)}")
        finally:
            await have.close()
        for k, database in enumerate(self._databases):
            await self._copy_schema(source, target, database)
            await _run(source, database, f"CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES")
            conninfo = source.conninfo(database=database)
            await _run(
                target,
                database,
                f"CREATE SUBSCRIPTION {_SUBSCRIPTION_PREFIX}{k} CONNECTION {_literal(conninfo)} "
                f"PUBLICATION {PUBLICATION} WITH (copy_data = true)",
            )
        await asyncio.gather(*(self._wait_synced(target, d) for d in self._databases))
        await set_read_only(target, True)

    async def _copy_roles(self, source: PgServer, target: PgServer) -> None:
        conn = await source.connect()
        try:
            roles = await conn.fetch(
                "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
                "rolreplication, rolbypassrls, rolpassword FROM pg_catalog.pg_authid "
                "WHERE rolname !~ '^pg_' AND rolname <> ALL($1::text[]) AND rolname NOT LIKE 'aurora_sim%'",
                list(_ROLES_KEPT),
            )
            grants = await conn.fetch(
                "SELECT r.rolname AS role, m.rolname AS member FROM pg_catalog.pg_auth_members a "
                "JOIN pg_catalog.pg_roles r ON r.oid = a.roleid "
                "JOIN pg_catalog.pg_roles m ON m.oid = a.member "
                "WHERE m.rolname !~ '^pg_'"
            )
        finally:
            await conn.close()
        statements: list[str] = []
        for role in roles:
            name = _ident(role["rolname"])
            flags = [
                ("SUPERUSER", role["rolsuper"]),
                ("INHERIT", role["rolinherit"]),
                ("CREATEROLE", role["rolcreaterole"]),
                ("CREATEDB", role["rolcreatedb"]),
                ("LOGIN", role["rolcanlogin"]),
                ("REPLICATION", role["rolreplication"]),
                ("BYPASSRLS", role["rolbypassrls"]),
            ]
            options = " ".join(word if on else "NO" + word for word, on in flags)
            statements.append(
                f"DO $$BEGIN CREATE ROLE {name}; EXCEPTION WHEN duplicate_object THEN NULL; END$$"
            )
            statements.append(f"ALTER ROLE {name} {options}")
            if role["rolpassword"] is not None:  # the verifier itself: the same password logs in
                statements.append(f"ALTER ROLE {name} PASSWORD {_literal(role['rolpassword'])}")
        statements += [f"GRANT {_ident(g['role'])} TO {_ident(g['member'])}" for g in grants]
        await target.execute(*statements)

    async def _copy_schema(self, source: PgServer, target: PgServer, database: str) -> None:
        excluded = [f"--exclude-schema={schema}" for schema in SIMULATOR_SCHEMAS]
        dump = await run_command(
            [
                self.blue.binaries.tool("pg_dump"),
                "--schema-only",
                "--no-publications",
                "--no-subscriptions",
                *excluded,
                "-d",
                source.conninfo(database=database),
            ],
            user=self.blue.user,
            timeout=120,
            env=tool_env(),
        )
        # psql meta-commands (``\restrict`` in recent releases) are for psql, not the server
        await _run(target, database, "\n".join(ln for ln in dump.splitlines() if not ln.startswith("\\")))

    async def _wait_synced(self, target: PgServer, database: str) -> None:
        async def synced() -> bool:
            pending = await _value(
                target,
                database,
                "SELECT count(*) FROM pg_catalog.pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')",
            )
            return bool(pending == 0)

        await wait_until(
            synced, timeout=_SYNC_TIMEOUT, what=f"green's copy of database {database!r} to be in sync"
        )

    # -- switchover ------------------------------------------------------------------------------

    async def stop_writes(self) -> None:
        """Blue's writer takes no more writes: read-only by default for every new transaction, and
        every client session ended (a transaction begun before would stay writable)."""
        source = self._source()
        await set_read_only(source, True)
        await source.execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() "
            "AND application_name IS DISTINCT FROM 'aurora-simulator'"
        )

    async def allow_writes_on_blue(self) -> None:
        """A switchover rolled back: blue's writer takes writes again."""
        await set_read_only(self._source(), False)

    async def wait_caught_up(self, timeout: float) -> None:
        """Wait until green has applied every commit blue made before this call (a marker row per
        database, committed on blue now, shows up on green)."""
        source, target = self._source(), self._target()
        token = uuid.uuid4().hex
        marker = f"INSERT INTO aurora_sim.switchover_marker (token) VALUES ({_literal(token)})"
        for database in self._databases:
            await _run(source, database, "SET default_transaction_read_only = off", marker)

        async def arrived() -> bool:
            for database in self._databases:
                found = await _value(
                    target,
                    database,
                    f"SELECT count(*) FROM aurora_sim.switchover_marker WHERE token = {_literal(token)}",
                )
                if found != 1:
                    return False
            return True

        await wait_until(arrived, timeout=timeout, interval=0.01, what="green to apply blue's last commits")

    async def detach(self) -> None:
        """Stop replicating: the subscriptions (and their slots on blue) and the publications go."""
        source, target = self._source(), self._target()
        for k, database in enumerate(self._databases):
            await _run(
                target,
                database,
                "SET default_transaction_read_only = off",
                f"DROP SUBSCRIPTION IF EXISTS {_SUBSCRIPTION_PREFIX}{k}",
            )
            await _run(
                source,
                database,
                "SET default_transaction_read_only = off",
                f"DROP PUBLICATION IF EXISTS {PUBLICATION}",
            )

    async def copy_sequences(self) -> None:
        """Give green's sequences blue's values (logical replication does not carry them)."""
        source, target = self._source(), self._target()
        excluded = ", ".join(_literal(s) for s in SIMULATOR_SCHEMAS)
        for database in self._databases:
            conn = await source.connect(database=database)
            try:
                rows = await conn.fetch(
                    "SELECT schemaname, sequencename, last_value FROM pg_catalog.pg_sequences "
                    f"WHERE last_value IS NOT NULL AND schemaname NOT IN ({excluded})"
                )
            finally:
                await conn.close()
            names = [_literal(_ident(r["schemaname"]) + "." + _ident(r["sequencename"])) for r in rows]
            statements = [
                f"SELECT pg_catalog.setval({name}, {int(r['last_value'])}, true)"
                for name, r in zip(names, rows, strict=True)
            ]
            if statements:
                await _run(target, database, "SET default_transaction_read_only = off", *statements)

    async def pause(self) -> None:
        """Hold replication (the subscriptions stop applying; blue keeps the WAL for them)."""
        for k, database in enumerate(self._databases):
            await _run(
                self._target(),
                database,
                "SET default_transaction_read_only = off",
                f"ALTER SUBSCRIPTION {_SUBSCRIPTION_PREFIX}{k} DISABLE",
            )

    async def resume(self) -> None:
        for k, database in enumerate(self._databases):
            await _run(
                self._target(),
                database,
                "SET default_transaction_read_only = off",
                f"ALTER SUBSCRIPTION {_SUBSCRIPTION_PREFIX}{k} ENABLE",
            )

    async def allow_writes_on_green(self) -> None:
        await set_read_only(self._target(), False)

    async def write_status(self, side: Side, writer_id: str, hosts: Sequence[BlueGreenHost]) -> None:
        """Publish the deployment's metadata on one cluster's writer (it replicates to its replicas)."""
        cluster = self.blue if side == "blue" else self.green
        await cluster.server(writer_id).execute(
            "SET default_transaction_read_only = off", set_blue_green_sql(hosts)
        )

    def _source(self) -> PgServer:
        if self._blue_writer is None:
            raise SimulatorError("the blue/green deployment is not replicating")
        return self._blue_writer

    def _target(self) -> PgServer:
        if self._green_writer is None:
            raise SimulatorError("the blue/green deployment is not replicating")
        return self._green_writer


async def set_read_only(server: PgServer, read_only: bool) -> None:
    """Make every new transaction on ``server`` read-only by default (or no longer)."""
    change = (
        "ALTER SYSTEM SET default_transaction_read_only = on"
        if read_only
        else "ALTER SYSTEM RESET default_transaction_read_only"
    )
    await server.execute(change, "SELECT pg_catalog.pg_reload_conf()")


async def _run(server: PgServer, database: str, *statements: str) -> None:
    conn = await server.connect(database=database)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _value(server: PgServer, database: str, query: str) -> Any:
    conn: asyncpg.Connection = await server.connect(database=database)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()
