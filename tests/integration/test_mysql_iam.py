"""The iam plugin on MySQL, end to end: real MariaDB servers whose IAM user logs in as on Aurora MySQL
(the server asks for ``mysql_clear_password`` and checks the token; ``AuroraSimulator.create_iam_user``),
over TLS that the client verifies against the simulator's CA, with tokens signed by aioboto3 (moto's
server as the AWS endpoint, dummy credentials). ``sim.iam_login_attempts()`` lists every password that
reached the server's check in clear text: how the tests know a token was, or was never, sent."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aioboto3
import pymysql
import pytest

import aurora_async
from aurora_async import ConfigurationError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.mysql.driver import MySQLConnection
from aurora_async.testing import AuroraSimulator, RehearsalSession

pytestmark = [pytest.mark.usefixtures("moto_endpoint"), pytest.mark.aurora_simulator(tls=True)]

IAM_USER = "iam_user"
APP_USER = "app_user"
TOKEN_HOST = "db.test.internal"  # what tokens are signed for: one token for every instance
ACCESS_DENIED = 1045


def _host(sim: AuroraSimulator) -> str:
    return sim.cluster_endpoint.rsplit(":", 1)[0]


def _verifying(sim: AuroraSimulator) -> ssl.SSLContext:
    assert sim.tls_root_cert is not None
    return ssl.create_default_context(cafile=str(sim.tls_root_cert))  # certificate and host name


def iam_options(sim: AuroraSimulator, session: Any, **extra: Any) -> dict[str, Any]:
    return {
        "dsn": f"mysql://{IAM_USER}@{sim.cluster_endpoint}/app",
        "plugins": ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam"),
        "iam_region": "us-east-1",
        "iam_host": TOKEN_HOST,
        "ssl": _verifying(sim),
        "aws_session": session,
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
        **extra,
    }


async def iam_user(sim: AuroraSimulator) -> RehearsalSession:
    """Make the IAM user, and a session whose every token becomes the one the server accepts."""
    await sim.create_iam_user(IAM_USER)
    return RehearsalSession(sim, IAM_USER)


async def one_row(conn: Any, sql: str) -> tuple[Any, ...]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row: tuple[Any, ...] = await cur.fetchone()
        return row


async def signed_token(*, user: str = IAM_USER, region: str = "us-east-1", port: int = 3306) -> str:
    """A real token from aioboto3, for what the arguments say (not installed on the server)."""
    async with aioboto3.Session().client("rds", region_name=region) as rds:
        token: str = await rds.generate_db_auth_token(
            DBHostname=TOKEN_HOST, Port=port, DBUsername=user, Region=region
        )
        return token


async def test_iam_login_over_verified_tls_is_a_clear_password_exchange(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    async with aurora_async.connect(**iam_options(sim, session)) as conn:
        current, user = await one_row(conn, "SELECT CURRENT_USER(), USER()")
        assert current == f"{IAM_USER}@%" and user.startswith(f"{IAM_USER}@")
        assert (await one_row(conn, "SHOW STATUS LIKE 'Ssl_cipher'"))[1]  # the server sees TLS
        (created,) = await one_row(conn, "SHOW CREATE USER CURRENT_USER()")
        assert "IDENTIFIED VIA pam USING 'aurora_async_sim_iam'" in created and "REQUIRE SSL" in created
        assert await one_row(conn, "SELECT @@pam_use_cleartext_plugin") == (1,)
        assert conn.raw._auth_plugin_used == "mysql_clear_password"  # what the client spoke
        writer = conn.instance.instance_id
    token = session.last_token
    assert token is not None and session.calls["generate_db_auth_token"] == 1
    # the token is the one signed for the IAM host, port, user and region
    where = urlsplit(f"//{token}")
    query = parse_qs(where.query)
    assert (where.hostname, where.port, query["DBUser"], query["Action"]) == (
        TOKEN_HOST,
        sim.port,
        [IAM_USER],
        ["connect"],
    )
    assert "/us-east-1/rds-db/aws4_request" in query["X-Amz-Credential"][0]
    # the server received it in clear text (inside TLS), whole, and accepted it; on the writer too
    attempts = sim.iam_login_attempts()
    assert attempts and all(a.accepted and a.user == IAM_USER for a in attempts)
    assert {a.length for a in attempts} == {len(token)}
    assert writer in {a.instance_id for a in attempts}


async def test_many_concurrent_connects_generate_one_token(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    conns = await asyncio.gather(*(aurora_async.connect(**iam_options(sim, session)) for _ in range(60)))
    try:
        assert session.calls["generate_db_auth_token"] == 1
        users = await asyncio.gather(*(one_row(c, "SELECT CURRENT_USER()") for c in conns[:10]))
        assert set(users) == {(f"{IAM_USER}@%",)}
        [cluster] = registry.clusters()
        assert cluster.auth is not None and cluster.auth.stats["login_retries"] == 0
    finally:
        await asyncio.gather(*(c.ensure_closed() for c in conns))
    attempts = sim.iam_login_attempts()
    assert len(attempts) >= 60 and all(a.accepted for a in attempts)


async def test_iam_connection_fails_over_to_the_new_writer(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    async with aurora_async.connect(**iam_options(sim, session)) as conn:
        old_writer = conn.instance.instance_id
        report = await sim.failover()
        assert report.new_writer != old_writer
        with pytest.raises(FailoverSuccessError):
            await one_row(conn, "SELECT 1")
        assert conn.instance.instance_id == report.new_writer
        assert await one_row(conn, "SELECT CURRENT_USER(), @@aurora_server_id") == (
            f"{IAM_USER}@%",
            report.new_writer,
        )
        assert (await one_row(conn, "SHOW STATUS LIKE 'Ssl_cipher'"))[1]
        assert conn.raw._auth_plugin_used == "mysql_clear_password"
    assert session.calls["generate_db_auth_token"] == 1  # the cached token logged in on the new writer
    accepted_on = {a.instance_id for a in sim.iam_login_attempts() if a.accepted}
    assert report.new_writer in accepted_on


async def test_a_token_the_server_does_not_accept_is_access_denied(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    await sim.create_iam_user(IAM_USER)
    # the server accepts a real token, signed for another region: not the one the library signs
    await sim.set_password(IAM_USER, await signed_token(region="eu-west-1"))
    session = RehearsalSession()  # signs real tokens, installs none
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await aurora_async.connect(**iam_options(sim, session))
    assert refused.value.args[0] == ACCESS_DENIED
    # a fresh token that fails is the caller's: no second try
    assert session.calls["generate_db_auth_token"] == 1
    [attempt] = sim.iam_login_attempts()
    assert not attempt.accepted and session.last_token is not None
    assert attempt.length == len(session.last_token)
    assert registry.clusters() == []
    # the same with the driver alone, for the user and a wrong user's token
    for token in (await signed_token(), await signed_token(user="someone_else")):
        with pytest.raises(pymysql.err.OperationalError) as plain_refusal:
            await MySQLConnection(
                host=_host(sim), port=sim.port, user=IAM_USER, password=token, ssl=_verifying(sim),
                auth_plugin="mysql_clear_password",
            )._connect()  # fmt: skip
        assert plain_refusal.value.args[0] == ACCESS_DENIED


async def test_an_expired_cached_token_is_replaced_once(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    async with aurora_async.connect(**iam_options(sim, session)):
        first = session.last_token
        await sim.set_password(IAM_USER, "the-cached-token-expired")  # the server stops accepting it
        opened = await asyncio.gather(*(aurora_async.connect(**iam_options(sim, session)) for _ in range(10)))
        try:
            for conn in opened:
                assert await one_row(conn, "SELECT CURRENT_USER()") == (f"{IAM_USER}@%",)
        finally:
            await asyncio.gather(*(conn.ensure_closed() for conn in opened))
        # (signed within the same second for the same request, the new token may equal the old one)
        assert session.calls["generate_db_auth_token"] == 2
        [cluster] = registry.clusters()
        # the connects refused with the cached token retried (those that asked after the refresh
        # got the fresh token at once): one new token for all of them
        assert cluster.auth is not None and cluster.auth.stats["login_retries"] >= 1
    refused = [a for a in sim.iam_login_attempts() if not a.accepted]
    assert refused and first is not None and {a.length for a in refused} == {len(first)}


async def test_without_verified_tls_the_token_never_leaves(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    ca_only = _verifying(sim)
    ca_only.check_hostname = False
    for ssl_option, level in ((None, "no TLS"), (unverified, "without certificate"), (ca_only, "host name")):
        with pytest.raises(ConfigurationError, match=f"needs TLS that verifies the server.*{level}"):
            await aurora_async.connect(**iam_options(sim, session, ssl=ssl_option))
    # TLS verified against a CA that did not sign the server's certificate: the handshake fails first
    # (aiomysql reports it as "can't connect", caused by the verification error)
    with pytest.raises(pymysql.err.OperationalError) as unverifiable:
        await aurora_async.connect(**iam_options(sim, session, ssl=ssl.create_default_context()))
    assert isinstance(unverifiable.value.__cause__, ssl.SSLCertVerificationError)
    # a connection told that its password is an IAM token refuses to log in without TLS
    token = await signed_token(port=sim.port)
    with pytest.raises(pymysql.err.OperationalError, match="not sending the IAM token"):
        await MySQLConnection(
            host=_host(sim), port=sim.port, user=IAM_USER, password=token, cleartext_needs_tls=True,
            auth_plugin="mysql_clear_password",
        )._connect()  # fmt: skip
    assert sim.iam_login_attempts() == []  # no clear-text password ever reached the server
    assert session.calls["generate_db_auth_token"] <= 1 and registry.clusters() == []
    # the check above is not vacuous: with the opt-out, the token crosses in clear text and reaches
    # the server, which accepts it but refuses the login for want of TLS (REQUIRE SSL)
    fresh = RehearsalSession(sim, IAM_USER)  # (a refused cached token would be retried with a new one)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await aurora_async.connect(**iam_options(sim, fresh, ssl=None, iam_allow_plaintext=True))
    assert refused.value.args[0] == ACCESS_DENIED
    assert [a.accepted for a in sim.iam_login_attempts()] == [True]


async def test_an_iam_user_and_a_password_user_each_stay_themselves(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    await sim.set_password(APP_USER, "app-password-1")
    password_options = {
        **iam_options(sim, None),
        "dsn": f"mysql://{APP_USER}:app-password-1@{sim.cluster_endpoint}/app",
        "plugins": ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring"),
    }
    del password_options["aws_session"]
    async with (
        aurora_async.connect(**iam_options(sim, session)) as by_token,
        aurora_async.connect(**password_options) as by_password,
    ):
        [cluster] = registry.clusters()  # one cluster, two identities
        assert len(cluster.identities) == 2
        report = await sim.failover()
        for conn, user, plugin in (
            (by_token, IAM_USER, "mysql_clear_password"),
            (by_password, APP_USER, "mysql_native_password"),
        ):
            with pytest.raises(FailoverSuccessError):
                await one_row(conn, "SELECT 1")
            assert conn.instance.instance_id == report.new_writer
            assert await one_row(conn, "SELECT CURRENT_USER()") == (f"{user}@%",)
            assert conn.raw._auth_plugin_used == plugin
    assert {a.user for a in sim.iam_login_attempts()} == {IAM_USER}  # the password never went in clear


async def test_the_token_is_never_logged_or_shown(
    aurora_mysql: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = aurora_mysql
    session = await iam_user(sim)
    caplog.set_level(logging.DEBUG)
    async with aurora_async.connect(**iam_options(sim, session)) as conn:
        [cluster] = registry.clusters()
        identity = conn._identity
        assert identity.credentials is not None
        shown = [repr(conn), repr(conn.raw), repr(cluster), repr(cluster.auth), repr(identity)]
        shown.append(repr(await cluster.auth.credentials(identity.credentials, _host(sim), sim.port)))
    token = session.last_token
    assert token is not None and "IAM token generated" in caplog.text
    signature = token.rsplit("X-Amz-Signature=", 1)[1]
    for needle in (token, signature):
        assert needle not in caplog.text and needle not in "\n".join(shown)
