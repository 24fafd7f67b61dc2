"""Shared cluster knowledge, per-connection identity: connections with different users, secrets, TLS,
server settings and MySQL session defaults share one cluster, and each physical connection opened for
one of them, at connect and at failover, is opened with its own identity."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverFailedError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, RehearsalSession
from tests.aws import put_secret
from tests.helpers import eventually

ADMIN, REPORT = "admin_user", "report_user"


def common(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
        **extra,
    }


async def _secret(name: str, user: str, password: str) -> str:
    return await put_secret(name, json.dumps({"username": user, "password": password}))


def _secret_options(sim: AuroraSimulator, secret_id: str, endpoint: str) -> dict[str, Any]:
    return common(
        sim,
        plugins=("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring")
        + ("aws_secrets_manager",),
        secrets_manager_secret_id=secret_id,
        secrets_manager_region="us-east-1",
        secrets_manager_endpoint=endpoint,
        aws_session=RehearsalSession(),
    )


async def _sessions(sim: AuroraSimulator, instance_id: str) -> list[tuple[int, str, bool | None]]:
    """(pid, user, ssl) of every client session on ``instance_id``, the checker's own excepted."""
    import asyncpg

    conn = await asyncpg.connect(sim.dsn(instance_id), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT a.pid, a.usename, s.ssl FROM pg_stat_activity a "
            "LEFT JOIN pg_stat_ssl s ON s.pid = a.pid "
            "WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.usefixtures("moto_endpoint")
async def test_each_secret_logs_in_as_its_own_user_beside_an_open_pool(
    aurora_postgres: AuroraSimulator, moto_endpoint: str
) -> None:
    sim = aurora_postgres
    await sim.set_password(ADMIN, "admin-password-1")
    await sim.set_password(REPORT, "report-password-1")
    admin_secret = await _secret("db/admin", ADMIN, "admin-password-1")
    report_secret = await _secret("db/report", REPORT, "report-password-1")
    dsn = sim.dsn("cluster").replace("postgres@", "@")  # no user: it comes from the secret
    async with (
        aurora_async.create_pool(
            dsn, min_size=2, **_secret_options(sim, admin_secret, moto_endpoint)
        ) as pool,
        aurora_async.connect(dsn, **_secret_options(sim, report_secret, moto_endpoint)) as report,
    ):
        assert len(registry.clusters()) == 1  # one cluster, two identities
        assert await report.fetchval("SELECT current_user") == REPORT
        async with pool.acquire() as admin:
            assert await admin.fetchval("SELECT current_user") == ADMIN
        report_failed = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await report.fetchval("SELECT 1")
        assert report.instance.instance_id == report_failed.new_writer
        assert await report.fetchval("SELECT current_user") == REPORT
        async with pool.acquire() as admin:
            try:
                user = await admin.fetchval("SELECT current_user")
            except FailoverSuccessError:
                user = await admin.fetchval("SELECT current_user")
            assert user == ADMIN


@pytest.mark.aurora_simulator(tls=True)
async def test_tls_and_server_settings_stay_each_connections_own_through_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    dsn = sim.dsn("cluster")
    async with (
        aurora_async.connect(
            dsn,
            ssl="disable",
            server_settings={"search_path": "tenant_a", "application_name": "A"},
            **common(sim),
        ) as a,
        aurora_async.connect(
            dsn,
            ssl="require",
            server_settings={"search_path": "tenant_b", "application_name": "B"},
            **common(sim),
        ) as b,
    ):
        assert len(registry.clusters()) == 1

        async def check() -> None:
            for conn, name, tls in ((a, "A", False), (b, "B", True)):
                row = await conn.fetchrow(
                    "SELECT current_setting('search_path'), current_setting('application_name'), "
                    "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())"
                )
                assert tuple(row) == (f"tenant_{name.lower()}", name, tls), name

        await check()
        report = await sim.failover()
        for conn in (a, b):
            with pytest.raises(FailoverSuccessError):
                await conn.fetchval("SELECT 1")
            assert conn.instance.instance_id == report.new_writer
        await check()

        # the library's own sessions on the new writer (topology monitor, host probe) serve B too:
        # none of them may be weaker than B's TLS
        mine = {a.raw.get_server_pid(), b.raw.get_server_pid()}

        async def background_is_encrypted() -> bool:
            sessions = await _sessions(sim, report.new_writer)
            background = [s for s in sessions if s[0] not in mine]
            return bool(background) and all(tls for _pid, _user, tls in background)

        await eventually(background_is_encrypted, what="background sessions on the new writer, all TLS")


@pytest.mark.parametrize("aurora_mysql", ["aurora"], indirect=True)
async def test_mysql_autocommit_stays_each_connections_own_through_failover(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    dsn = sim.dsn("cluster")
    async with (
        aurora_async.connect(dsn, autocommit=True, **common(sim)) as a,
        aurora_async.connect(dsn, **common(sim)) as b,
    ):
        async with a.cursor() as cur:
            await cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        report = await sim.failover()
        for conn in (a, b):
            with pytest.raises(FailoverSuccessError):
                async with conn.cursor() as cur:
                    await cur.execute("SELECT 1")
            assert conn.instance.instance_id == report.new_writer
        assert a.get_autocommit() is True and b.get_autocommit() is False
        async with b.cursor() as cur:
            await cur.execute("SELECT @@autocommit")
            assert (await cur.fetchone())[0] == 0
            await cur.execute("INSERT INTO t VALUES (1)")
        await b.rollback()
        async with a.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM t")
            assert (await cur.fetchone())[0] == 0  # b's rollback took its row back


async def test_a_rotated_password_fails_only_the_connection_that_still_has_the_old_one(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    user = "rotating_user"
    await sim.set_password(user, "old-password-1")
    dsn = sim.dsn("cluster").replace("postgres@", f"{user}:old-password-1@")
    old = await aurora_async.connect(dsn, **common(sim, failover_timeout=5))
    try:
        await sim.set_password(user, "new-password-2")
        async with aurora_async.connect(
            dsn.replace("old-password-1", "new-password-2"), **common(sim)
        ) as new:
            report = await sim.failover()
            with pytest.raises(FailoverSuccessError):
                await new.fetchval("SELECT 1")
            assert new.instance.instance_id == report.new_writer
            assert await new.fetchval("SELECT current_user") == user
            # the old password is refused at once, with a clear error, not at the deadline
            started = asyncio.get_running_loop().time()
            with pytest.raises(FailoverFailedError, match="refused the login"):
                await old.fetchval("SELECT 1")
            assert asyncio.get_running_loop().time() - started < 4
            assert old.is_closed()
    finally:
        await old.close()


async def test_background_work_goes_on_when_the_login_it_preferred_is_refused(
    aurora_postgres: AuroraSimulator,
) -> None:
    """The writer search borrows the identity whose login last worked; when the server refuses it (its
    password was changed), the next identity is used, and the other connections fail over as usual."""
    sim = aurora_postgres
    await sim.set_password("steady_user", "steady-pw-1")
    await sim.set_password("changing_user", "changing-pw-1")
    base = sim.dsn("cluster").replace("postgres@", "{}@")
    steady = await aurora_async.connect(base.format("steady_user:steady-pw-1"), **common(sim))
    changing = await aurora_async.connect(
        base.format("changing_user:changing-pw-1"), **common(sim, failover_timeout=5)
    )
    try:
        [cluster] = registry.clusters()
        assert cluster.identities.for_background()[0].user == "changing_user"  # the last login that worked
        await sim.set_password("changing_user", "changing-pw-2")
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await steady.fetchval("SELECT 1")
        assert steady.instance.instance_id == report.new_writer
        assert await steady.fetchval("SELECT current_user") == "steady_user"
        assert cluster.identities.for_background()[0].user == "steady_user"  # refused, so now second
        with pytest.raises(FailoverFailedError, match="refused the login"):
            await changing.fetchval("SELECT 1")
    finally:
        await changing.close()
        await steady.close()


@pytest.mark.aurora_simulator(tls=True)
async def test_background_sessions_are_reopened_when_a_stronger_tls_joins(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    plain = await aurora_async.connect(sim.dsn("cluster"), ssl="disable", **common(sim))
    try:
        mine = {plain.raw.get_server_pid()}

        async def background(tls: bool) -> bool:
            sessions = [s for s in await _sessions(sim, sim.writer_id) if s[0] not in mine]
            # the monitoring connection (the writer's probe too), and any other, all of the wanted kind
            return len(sessions) >= 1 and all(bool(s[2]) is tls for s in sessions)

        await eventually(lambda: background(False), what="plain background sessions for a plain connection")
        async with aurora_async.connect(sim.dsn("cluster"), ssl="require", **common(sim)) as strong:
            mine.add(strong.raw.get_server_pid())
            await eventually(lambda: background(True), what="background sessions reopened with TLS")
            [cluster] = registry.clusters()
            assert cluster.stats["writer_searches"] == 0  # reopened, not searched for
            assert await plain.fetchval("SELECT 1") == 1 and await strong.fetchval("SELECT 1") == 1
    finally:
        await plain.close()


async def test_a_search_that_met_only_refused_logins_takes_up_a_login_that_joins(
    aurora_postgres: AuroraSimulator,
) -> None:
    """The writer search of a failover met only a rotated password (the one open connection's); a
    connection with a working login joins meanwhile: the search borrows it, and that connection's own
    failover succeeds."""
    sim = aurora_postgres
    await sim.set_password("stale_user", "stale-pw-1")
    await sim.set_password("fresh_user", "fresh-pw-1")
    base = sim.dsn("cluster").replace("postgres@", "{}@")
    stale = await aurora_async.connect(base.format("stale_user:stale-pw-1"), **common(sim))
    try:
        await sim.set_password("stale_user", "stale-pw-2")
        await sim.failover()  # the cluster's own search now meets only a refused login
        async with aurora_async.connect(base.format("fresh_user:fresh-pw-1"), **common(sim)) as fresh:
            await sim.reset_connections(sim.writer_id)
            with pytest.raises(FailoverSuccessError):
                await fresh.fetchval("SELECT 1")
            assert fresh.instance.instance_id == sim.writer_id
            assert await fresh.fetchval("SELECT current_user") == "fresh_user"
    finally:
        await stale.close()
