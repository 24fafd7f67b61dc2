"""IAM tokens in an Aurora Global Database (PostgreSQL): each token is signed for the region of the
instance it logs in to, as the topology gives it, not for the one region ``iam_region`` names; a
token for the global writer endpoint's name is signed for the region the global writer is in now.

Every token the library generates becomes the IAM user's password on the global writer (the
simulator's ``set_password`` follows the primary region), so the logins are real; the region each
token was signed for is read back from the token itself (its SigV4 credential scope)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import aurora_async
from aurora_async import FailoverSuccessError
from aurora_async.testing import AuroraSimulator, GlobalDatabase, RehearsalSession
from tests.integration.test_global_database import gdb, options  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("moto_endpoint")

IAM_USER = "iam_global"
GLOBAL_NAME = "orders.global-abc123.global.rds.amazonaws.com"


class Tokens:
    """Every token generated, installed as the IAM user's password, and what each was signed for."""

    def __init__(self, sim: AuroraSimulator) -> None:
        self.sim = sim
        self.signed: list[tuple[str, str]] = []  # (host in the token, region of its signature)

    async def set_password(self, user: str, token: str) -> None:
        parts = urlsplit("//" + token)
        scope = parse_qs(parts.query)["X-Amz-Credential"][0].split("/")
        self.signed.append((parts.hostname or "", scope[2]))
        await self.sim.set_password(user, token)


def iam_options(sim: AuroraSimulator, database: GlobalDatabase, session: Any, **extra: Any) -> dict[str, Any]:
    host, port = database.global_endpoint.rsplit(":", 1)
    return {
        **options(sim, database),
        "host": host,
        "port": int(port),
        "user": IAM_USER,
        "database": "postgres",
        "plugins": ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam"),
        "iam_region": sim.region,  # the global endpoint names none
        "iam_allow_plaintext": True,  # the simulator's servers speak no TLS
        "aws_session": session,
        **extra,
    }


async def write(conn: aurora_async.AuroraConnection, row_id: int) -> None:
    while True:  # what an application does: re-run after a failover error
        try:
            await conn.execute("INSERT INTO ledger VALUES ($1)", row_id)
            return
        except FailoverSuccessError:
            continue


async def test_each_token_is_signed_for_the_region_of_the_instance_it_logs_in_to(
    gdb: tuple[AuroraSimulator, GlobalDatabase],  # noqa: F811 - the fixture
) -> None:
    sim, database = gdb
    tokens = Tokens(sim)
    await sim.set_password(IAM_USER, "not a token")
    admin = await aurora_async.connect(sim.dsn("cluster"), plugins="")
    try:
        await admin.execute(f"GRANT ALL ON ledger TO {IAM_USER}")
    finally:
        await admin.close()
    session = RehearsalSession(tokens, IAM_USER)
    conns = [await aurora_async.connect(**iam_options(sim, database, session)) for _ in range(2)]
    try:
        for k, conn in enumerate(conns):
            await write(conn, k + 1)
        await database.failover(allow_data_loss=True)
        for k, conn in enumerate(conns):
            await write(conn, 100 + k)
            assert conn.instance.instance_id == "111" and conn.instance.region == "eu-west-1"
        regions = {"11": "us-east-1", "12": "us-east-1", "111": "eu-west-1", "112": "eu-west-1"}
        expected = {sim.endpoint(i).rsplit(":", 1)[0]: r for i, r in regions.items() if i in ("11", "12")}
        expected |= {
            database.secondary.endpoint(i).rsplit(":", 1)[0]: r for i, r in regions.items() if len(i) == 3
        }
        expected[database.global_endpoint.rsplit(":", 1)[0]] = sim.region  # iam_region: an address
        assert tokens.signed, "no token was generated"
        for host, region in tokens.signed:
            assert expected[host] == region, (host, region, tokens.signed)
        # the failover logged in to the new writer with a token for its own region
        assert (database.secondary.endpoint("111").rsplit(":", 1)[0], "eu-west-1") in tokens.signed
    finally:
        for conn in conns:
            await conn.close()


async def test_a_token_for_the_global_endpoints_name_follows_the_global_writer(
    gdb: tuple[AuroraSimulator, GlobalDatabase],  # noqa: F811 - the fixture
) -> None:
    sim, database = gdb
    tokens = Tokens(sim)
    await sim.set_password(IAM_USER, "not a token")
    session = RehearsalSession(tokens, IAM_USER)
    # the token names the global writer endpoint (iam_host), whatever address is dialled
    named = iam_options(sim, database, session, iam_host=GLOBAL_NAME)
    before = await aurora_async.connect(**named)
    try:
        assert tokens.signed[-1] == (GLOBAL_NAME, sim.region)  # iam_region: no topology yet
        await database.switchover()
        await sim.wait_dns_settled()
        # a new connection through the global endpoint: its token is for the writer's region now
        after = await aurora_async.connect(**named)
        try:
            assert after.instance.region == "eu-west-1"
            assert tokens.signed[-1] == (GLOBAL_NAME, "eu-west-1"), tokens.signed
        finally:
            await after.close()
    finally:
        await before.close()
