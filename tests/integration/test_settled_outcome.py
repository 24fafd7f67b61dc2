"""An unknown outcome is final once it is reported: a read-back then tells the truth.

A connection cut off on the client side (here as host monitoring cuts one off, while the network to a
live writer is slow) leaves its server session alive, with the application's COMMIT still on its way.
When the failover lands on that same writer, the old session must be gone before the error reaches
the application, or a read-back runs before the late COMMIT, finds nothing, and the re-run applies the
transaction a second time. The chaos suite found exactly that on MySQL; here it is made certain: the
COMMIT is held back for a second on its way while the failover and the read-back run.

The judge is the server: the old session is no longer listed when the error is raised, and what the
read-back saw is what the database holds once every byte in flight has arrived.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async._engines import DRIVERS
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

from ._engine_ops import EngineOps

pytestmark = pytest.mark.aurora_simulator(instances=2)

HELD_BACK = 2.0  # round trip added while the COMMIT is sent: it reaches the server a second later


async def _listed(ops: EngineOps, instance: str, session: int) -> bool:
    return bool(int(await ops.outside(instance, ops.session_listed_sql.format(id=session))))


async def _held_back_then_cut_off(sim: AuroraSimulator, conn: Any, call: asyncio.Future[Any]) -> None:
    """``call`` sends its statement while the writer's network is slow, then the connection is cut off
    as host monitoring cuts one off; the network is quick again for the failover."""
    loop = asyncio.get_running_loop()

    async def sent() -> bool:
        return conn.busy_for(loop.time()) is not None  # set in the step that writes the statement

    await eventually(sent, what="the statement to be sent")
    await sim.latency(sim.writer_id, 0)  # what is already on its way still arrives late
    assert conn.abort_physical()


async def test_a_commit_cut_off_on_a_live_writer_is_settled_before_its_outcome_is_reported(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    writer = sim.writer_id
    conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    try:
        await ops.write(conn, "CREATE TABLE t (id int NOT NULL)")
        old_session = int(await ops.scalar(conn, ops.session_id_sql))
        tx = await ops.begin(conn)
        await ops.execute(conn, "INSERT INTO t VALUES (1)")
        await sim.latency(writer, HELD_BACK)
        commit = asyncio.ensure_future(tx.commit())
        await _held_back_then_cut_off(sim, conn, commit)
        with pytest.raises(TransactionResolutionUnknownError):
            await commit
        assert await ops.host_id(conn) == writer  # the failover came back to the same, live, writer
        await _read_back_and_rerun(sim, ops, conn, old_session)
    finally:
        await ops.close(conn)


async def test_a_statement_cut_off_on_a_live_writer_is_settled_before_may_have_run_is_reported(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    writer = sim.writer_id
    extra = {"autocommit": True} if ops.engine == "mysql" else {}
    conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options(**extra))
    try:
        await ops.write(conn, "CREATE TABLE t (id int NOT NULL)")
        old_session = int(await ops.scalar(conn, ops.session_id_sql))
        await sim.latency(writer, HELD_BACK)
        insert = asyncio.ensure_future(ops.execute(conn, "INSERT INTO t VALUES (1)"))
        await _held_back_then_cut_off(sim, conn, insert)
        with pytest.raises(FailoverSuccessError) as raised:
            await insert
        assert raised.value.may_have_run
        await _read_back_and_rerun(sim, ops, conn, old_session)
    finally:
        await ops.close(conn)


async def _read_back_and_rerun(sim: AuroraSimulator, ops: EngineOps, conn: Any, old_session: int) -> None:
    """The claim, then what an application does with the outcome reported: by now the old session is
    gone from the writer, so it cannot commit any more; the row is read back and written again only if
    absent; once every byte that was on its way has arrived, the row is there exactly once."""
    writer = sim.writer_id
    assert not await _listed(ops, writer, old_session)
    if not int(await ops.outside(writer, "SELECT count(*) FROM t")):
        await ops.write(conn, "INSERT INTO t VALUES (1)")
    await _delivered(sim, writer)
    assert int(await ops.outside(writer, "SELECT count(*) FROM t")) == 1


async def _delivered(sim: AuroraSimulator, instance: str) -> None:
    """Wait until the instance's proxy holds nothing on its way (the held-back COMMIT reached the
    server, or its link was torn down with it)."""

    async def delivered() -> bool:
        status = await sim.proxy_status()
        return int(status["backends"][instance]["in_flight"]) == 0

    await eventually(delivered, what=f"the cut-off link to {instance} to deliver what it held")


async def test_only_the_cut_off_session_is_ended_never_a_younger_one_with_its_id(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """An id names the cut-off session only if that session is as old as the connection was: a younger
    one holding the same id (a PostgreSQL PID reused, MySQL's ids started over at a restart) is
    someone else's, and is left alone."""
    driver = DRIVERS[ops.engine]
    asker = await aurora_async.connect_raw(sim.dsn("cluster"), **ops.options())
    other = await aurora_async.connect_raw(sim.dsn("cluster"), **ops.options())
    try:
        other_id = int(await ops.raw_scalar(other, ops.session_id_sql))
        # asked for a session opened an hour ago: the one with this id began after that
        assert not await driver.end_session(asker, other_id, 3600.0)
        assert int(await ops.raw_scalar(other, "SELECT 1")) == 1
        # asked for the session it is: ended, and gone from the server's list
        assert await driver.end_session(asker, other_id, 0.0)

        async def ended() -> bool:
            return not await _listed(ops, sim.writer_id, other_id)

        await eventually(ended, what="the ended session to leave the server")
        assert not await driver.end_session(asker, other_id, 0.0)  # no such session any more
        assert not await driver.session_alive(asker, other_id)
    finally:
        await ops.close_raw(asker)
        other.terminate()
