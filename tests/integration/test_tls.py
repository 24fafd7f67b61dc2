"""TLS that was asked for is TLS that is used: a MySQL connection given an ``SSLContext`` never logs in
over plain text (aiomysql alone would), so an IAM token or a password never crosses in the clear; and
PostgreSQL IAM connections verify the server."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pymysql
import pytest

import aurora_async
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, RehearsalSession
from tests.helpers import LoopbackServer

SECRET = "never-in-clear-4f1c2b"


class _PlainMySqlGreeter(LoopbackServer):
    """A loopback server that greets like a MySQL server without TLS (no CLIENT_SSL capability) and
    records every byte the client sends after the greeting."""

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()
        self.greeted = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        capabilities = 0x0200 | 0x8000 | 0x80000  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH; no SSL
        salt = b"abcdefgh" + b"ijklmnopqrst"
        payload = (
            b"\x0a5.7.99-greeter\x00"
            + struct.pack("<I", 7)
            + salt[:8]
            + b"\x00"
            + struct.pack("<H", capabilities & 0xFFFF)
            + b"\x21"  # utf8
            + struct.pack("<H", 2)  # autocommit status
            + struct.pack("<H", capabilities >> 16)
            + bytes([len(salt) + 1])
            + b"\x00" * 10
            + salt[8:]
            + b"\x00"
            + b"mysql_clear_password\x00"
        )
        writer.write(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        await writer.drain()
        self.greeted.set()
        while data := await reader.read(4096):
            self.received += data


def _pattern(sim: AuroraSimulator) -> dict[str, str]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern}


def _verifying() -> ssl.SSLContext:
    return ssl.create_default_context()  # CERT_REQUIRED and check_hostname


async def test_mysql_with_an_ssl_context_never_logs_in_over_plain_text() -> None:
    greeter = _PlainMySqlGreeter()
    async with greeter as port:
        with pytest.raises(pymysql.err.OperationalError) as raised:
            await aurora_async.connect(
                f"mysql://app:{SECRET}@127.0.0.1:{port}/app", ssl=_verifying(), plugins=()
            )
        assert raised.value.args[0] == 2026 and "does not offer it" in str(raised.value)
        assert greeter.greeted.is_set()
    assert bytes(greeter.received) == b""  # not even the user name
    assert registry.clusters() == []


@pytest.mark.usefixtures("moto_endpoint")
async def test_mysql_iam_token_is_not_sent_to_a_server_without_tls() -> None:
    session = RehearsalSession()
    greeter = _PlainMySqlGreeter()
    async with greeter as port:
        with pytest.raises(pymysql.err.OperationalError):
            await aurora_async.connect(
                f"mysql://iam_user@127.0.0.1:{port}/app",
                plugins=("iam",),
                iam_region="us-east-1",
                ssl=_verifying(),
                aws_session=session,
            )
    assert session.calls["generate_db_auth_token"] == 1 and session.last_token is not None
    assert session.last_token.encode() not in bytes(greeter.received)
    assert b"X-Amz-Signature" not in bytes(greeter.received) and bytes(greeter.received) == b""


@pytest.mark.parametrize("aurora_mysql", ["aurora"], indirect=True)
async def test_mysql_ssl_against_a_real_server_without_tls_is_a_clear_error(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # any TLS at all would do
    with pytest.raises(pymysql.err.OperationalError, match="does not offer it"):
        await aurora_async.connect(sim.dsn("cluster"), ssl=context, **_pattern(sim))
    assert registry.clusters() == []
    # no TLS asked for: plain text works
    async with aurora_async.connect(sim.dsn("cluster"), **_pattern(sim)) as plain, plain.cursor() as cur:
        await cur.execute("SELECT 1")
        assert (await cur.fetchone())[0] == 1


@pytest.mark.aurora_simulator(tls=True)
async def test_verify_full_against_the_simulators_ca_through_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    assert sim.tls_root_cert is not None
    context = ssl.create_default_context(cafile=str(sim.tls_root_cert))
    dsn = f"{sim.dsn('cluster')}?sslmode=verify-full&sslrootcert={sim.tls_root_cert}"
    options = {"failover_timeout": 20, "cluster_instance_host_pattern": sim.instance_host_pattern}
    async with (
        aurora_async.connect(sim.dsn("cluster"), ssl=context, **options) as by_context,
        aurora_async.connect(dsn, **options) as by_dsn,
    ):
        report = await sim.failover()
        for conn in (by_context, by_dsn):
            with pytest.raises(aurora_async.FailoverSuccessError):
                await conn.fetchval("SELECT 1")
            assert conn.instance.instance_id == report.new_writer
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    # the system CAs do not know the simulator's: a clear error at once, also while the registry
    # still knows the cluster (a certificate refused is not an instance down)
    wrong = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        await aurora_async.connect(sim.dsn("cluster"), ssl=wrong, **options)
