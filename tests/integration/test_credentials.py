"""The iam and aws_secrets_manager plugins against real servers (simulator) and moto's server."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverSuccessError, IamAuthError, SecretsManagerError
from aurora_async._auth import Authenticator
from aurora_async._config import parse
from aurora_async._registry import registry
from aurora_async.postgresql.driver import open_connection
from aurora_async.testing import AuroraSimulator, RehearsalSession
from tests.aws import put_secret

pytestmark = pytest.mark.usefixtures("moto_endpoint")

IAM_USER = "iam_user"
APP_USER = "app_user"
MANY = pytest.mark.aurora_simulator(max_connections=700)


def _host(sim: AuroraSimulator) -> str:
    return sim.cluster_endpoint.rsplit(":", 1)[0]


def iam_options(sim: AuroraSimulator, session: Any, **extra: Any) -> dict[str, Any]:
    return {
        "host": _host(sim),
        "port": sim.port,
        "user": IAM_USER,
        "database": "postgres",
        "plugins": ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam"),
        "iam_region": "us-east-1",
        "iam_host": "db.test.internal",  # one token for every instance (as through a tunnel)
        "iam_allow_plaintext": True,  # the simulator's servers speak no TLS
        "aws_session": session,
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
        **extra,
    }


def _verifying(sim: AuroraSimulator) -> ssl.SSLContext:
    assert sim.tls_root_cert is not None
    return ssl.create_default_context(cafile=str(sim.tls_root_cert))


def token_becomes_password(sim: AuroraSimulator) -> RehearsalSession:
    """A session whose every generated token is at once made the IAM user's database password."""
    return RehearsalSession(sim, IAM_USER)


@MANY
async def test_iam_token_logs_in_and_500_connects_generate_one(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    session = token_becomes_password(sim)
    conns = await asyncio.gather(*(aurora_async.connect(**iam_options(sim, session)) for _ in range(500)))
    try:
        assert session.calls["generate_db_auth_token"] == 1
        users = await asyncio.gather(*(c.fetchval("SELECT current_user") for c in conns[:20]))
        assert set(users) == {IAM_USER}
        [cluster] = registry.clusters()
        assert cluster.auth is not None and cluster.auth.stats["login_retries"] == 0
    finally:
        await asyncio.gather(*(c.close() for c in conns))


@pytest.mark.aurora_simulator(tls=True)
async def test_iam_over_tls_needs_no_opt_out(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    # verify-full against the simulator's CA: what the iam plugin asks for by default
    options = iam_options(sim, token_becomes_password(sim), ssl=_verifying(sim))
    del options["iam_allow_plaintext"]
    async with aurora_async.connect(**options) as conn:
        ssl_in_use = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert ssl_in_use is True and await conn.fetchval("SELECT current_user") == IAM_USER
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert conn.instance.instance_id == report.new_writer
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True


async def test_login_failure_with_a_cached_token_fetches_one_fresh_token(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    session = token_becomes_password(sim)
    async with aurora_async.connect(**iam_options(sim, session)):
        await sim.set_password(IAM_USER, "not-the-cached-token")  # the cached token stops working
        # 20 connections refused with the same cached token at once: one fresh token for all of them
        # (the host monitor's probe connection may be refused too, and joins the same refresh)
        opened = await asyncio.gather(*(aurora_async.connect(**iam_options(sim, session)) for _ in range(20)))
        try:
            for conn in opened:
                assert await conn.fetchval("SELECT current_user") == IAM_USER
        finally:
            await asyncio.gather(*(conn.close() for conn in opened))
        assert session.calls["generate_db_auth_token"] == 2
        [cluster] = registry.clusters()
        assert cluster.auth is not None and cluster.auth.stats["login_retries"] >= 20


async def test_tokens_are_reused_until_shortly_before_they_expire(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    session = token_becomes_password(sim)
    config = parse(**iam_options(sim, session, plugins=("iam",)))
    now = [1000.0]
    auth = Authenticator(default_session=lambda: None, clock=lambda: now[0])
    host, port = _host(sim), sim.port

    async def login() -> None:
        conn = await open_connection(config.identity, host, port, 5, auth)
        assert await conn.fetchval("SELECT current_user") == IAM_USER
        await conn.close()

    await login()
    now[0] += config.options.iam_expiration - 1  # still within the reuse period
    await login()
    assert session.calls["generate_db_auth_token"] == 1
    now[0] += 2  # past it: a new token, before the old one (900 s) actually expires
    await login()
    assert session.calls["generate_db_auth_token"] == 2


async def test_iam_connections_fail_over_with_the_cached_token(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    session = token_becomes_password(sim)
    async with aurora_async.connect(**iam_options(sim, session)) as conn:
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert conn.instance.instance_id == report.new_writer
        assert await conn.fetchval("SELECT current_user") == IAM_USER
    assert session.calls["generate_db_auth_token"] == 1


def secret_options(sim: AuroraSimulator, session: Any, secret_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "host": _host(sim),
        "port": sim.port,
        "database": "postgres",
        "plugins": (
            "initial_connection",
            "aurora_connection_tracker",
            "failover",
            "host_monitoring",
            "aws_secrets_manager",
        ),
        "secrets_manager_secret_id": secret_id,
        "aws_session": session,
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        **extra,
    }


@MANY
async def test_secret_is_fetched_once_for_500_connects_and_survives_rotation(
    aurora_postgres: AuroraSimulator, moto_endpoint: str
) -> None:
    sim = aurora_postgres
    await sim.set_password(APP_USER, "first-password-1")
    arn = await put_secret(
        "aurora/rotating", json.dumps({"username": APP_USER, "password": "first-password-1"})
    )
    session = RehearsalSession()
    options = secret_options(sim, session, arn, secrets_manager_endpoint=moto_endpoint)  # region from the ARN
    conns = await asyncio.gather(*(aurora_async.connect(**options) for _ in range(500)))
    try:
        assert session.calls["get_secret_value"] == 1
        assert await conns[0].fetchval("SELECT current_user") == APP_USER
        # rotation: the database password and the secret change; the cached secret is now stale
        await sim.set_password(APP_USER, "second-password-2")
        await put_secret(arn, json.dumps({"username": APP_USER, "password": "second-password-2"}))
        async with aurora_async.connect(**options) as fresh:
            assert await fresh.fetchval("SELECT current_user") == APP_USER
        assert session.calls["get_secret_value"] == 2
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def test_one_secrets_client_serves_two_identities_and_closes_with_the_last_connection(
    aurora_postgres: AuroraSimulator, moto_endpoint: str
) -> None:
    """Two users' secrets on one cluster: two fetches through one client (made once: a client per
    fetch cost the event loop ~25 ms each), kept open while a connection is, closed with the last."""
    sim = aurora_postgres
    secrets = {}
    for user in ("app_a", "app_b"):
        await sim.set_password(user, f"pw-{user}-1")
        secrets[user] = await put_secret(
            f"aurora/{user}", json.dumps({"username": user, "password": f"pw-{user}-1"})
        )
    session = RehearsalSession()
    a = await aurora_async.connect(
        **secret_options(sim, session, secrets["app_a"], secrets_manager_endpoint=moto_endpoint)
    )
    b = await aurora_async.connect(
        **secret_options(sim, session, secrets["app_b"], secrets_manager_endpoint=moto_endpoint)
    )
    try:
        assert await a.fetchval("SELECT current_user") == "app_a"
        assert await b.fetchval("SELECT current_user") == "app_b"
        assert session.calls["get_secret_value"] == 2
        assert session.calls["client secretsmanager"] == 1 and session.open_clients == 1
        await a.close()
        assert session.open_clients == 1  # b's cluster still uses it
    finally:
        await a.close()
        await b.close()
    assert session.open_clients == 0
    assert registry.clusters() == []


@pytest.mark.parametrize(
    ("secret", "keys", "message", "code"),
    [
        (
            None,
            {},
            "could not fetch secret 'aurora/missing': ResourceNotFoundException",
            "ResourceNotFoundException",
        ),
        ("{not json", {}, "is not a JSON object", None),
        ('["a list"]', {}, "is not a JSON object", None),
        (
            json.dumps({"user": APP_USER, "pass": "x"}),
            {},
            "no string value for key(s) 'username', 'password'",
            None,
        ),
        (
            json.dumps({"login": APP_USER, "secret": "hunter2-in-secret"}),
            {"secrets_manager_secret_username_key": "login"},
            "no string value for key(s) 'password'",
            None,
        ),
    ],
)
async def test_bad_secrets_raise_clear_errors(
    aurora_postgres: AuroraSimulator, secret: str | None, keys: dict[str, str], message: str, code: str | None
) -> None:
    sim = aurora_postgres
    name = "aurora/missing" if secret is None else f"aurora/bad-{abs(hash(secret))}"
    if secret is not None:
        await put_secret(name, secret)
    options = secret_options(sim, RehearsalSession(), name, secrets_manager_region="us-east-1", **keys)
    with pytest.raises(SecretsManagerError) as caught:
        await aurora_async.connect(**options)
    assert message in str(caught.value)
    assert caught.value.code == code
    assert "hunter2" not in str(caught.value)
    # nothing rides along: a JSONDecodeError's .doc is the whole secret
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert registry.clusters() == []


async def test_no_token_password_or_secret_is_logged_or_shown(
    aurora_postgres: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = aurora_postgres
    secret_password = "s3cret-value-never-shown"
    await sim.set_password(APP_USER, secret_password)
    name = await put_secret("aurora/quiet", json.dumps({"username": APP_USER, "password": secret_password}))
    caplog.set_level(logging.DEBUG)  # everything, botocore included, from here: the connects
    shown: list[str] = []
    rehearsal = RehearsalSession(sim, IAM_USER)
    async with aurora_async.connect(**iam_options(sim, rehearsal)) as conn:
        token = rehearsal.last_token
        assert token is not None and "X-Amz-Signature=" in token
        shown += [repr(conn), repr(registry.clusters()[0]), repr(registry.clusters()[0].auth)]
        async with aurora_async.connect(
            **secret_options(sim, RehearsalSession(), name, secrets_manager_region="us-east-1")
        ) as other:
            [cluster] = registry.clusters()  # one cluster, two identities
            shown += [repr(other), repr(cluster), repr(cluster.auth), repr(cluster.identities)]
            for each in (conn, other):
                identity = each._identity
                assert identity.credentials is not None
                shown += [repr(identity), repr(identity.credentials)]
                shown.append(repr(await cluster.auth.credentials(identity.credentials, _host(sim), sim.port)))
    signature = token.rsplit("X-Amz-Signature=", 1)[1]
    text = caplog.text + "\n".join(shown)
    assert "IAM token generated" in caplog.text and f"secret {name!r} fetched" in caplog.text
    for needle in (token, signature, secret_password):
        assert needle not in text


async def test_secret_connections_fail_over_with_the_cached_secret(
    aurora_postgres: AuroraSimulator, moto_endpoint: str
) -> None:
    sim = aurora_postgres
    await sim.set_password(APP_USER, "failover-password")
    name = await put_secret(
        "aurora/failover", json.dumps({"username": APP_USER, "password": "failover-password"})
    )
    session = RehearsalSession()
    options = secret_options(sim, session, name, secrets_manager_region="us-east-1", failover_timeout=20)
    async with aurora_async.connect(**options) as conn:
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert conn.instance.instance_id == report.new_writer
        assert await conn.fetchval("SELECT current_user") == APP_USER
    assert session.calls["get_secret_value"] == 1


async def test_no_aws_credentials_is_an_iam_auth_error(
    aurora_postgres: AuroraSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    sim = aurora_postgres
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(IamAuthError, match="could not generate an IAM token for iam_user@db.test.internal"):
        await aurora_async.connect(**iam_options(sim, None))
    assert registry.clusters() == []
