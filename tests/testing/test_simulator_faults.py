"""Network and process faults on the simulator: black hole, crash, latency, reboot, membership."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from tests.helpers import (
    AURORA_HOST_ID_SQL,
    AURORA_TOPOLOGY_SQL,
    CONNECTION_LOST,
    IS_READER_SQL,
    assert_writer_replicates,
    connect,
    eventually,
    execute,
    fetchval,
    has_table,
    wait_for_table,
)


async def _topology(dsn: str) -> dict[str, tuple[bool, object]]:
    conn = await connect(dsn)
    try:
        return {r[0]: (r[1], r[4]) for r in await conn.fetch(AURORA_TOPOLOGY_SQL)}
    finally:
        await conn.close()


async def test_blackhole_makes_queries_and_connects_hang_until_restored(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("12"))
    await sim.blackhole("12")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await conn.fetchval("SELECT 1", timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncpg.connect(sim.dsn("12"), timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 5
    assert sim.instances["12"].network == "blackhole"
    # other instances are unaffected
    assert await fetchval(sim.dsn("13"), AURORA_HOST_ID_SQL) == "13"
    await sim.restore("12")
    assert await fetchval(sim.dsn("12"), AURORA_HOST_ID_SQL) == "12"
    conn.terminate()


async def test_crash_fails_fast_and_refuses_until_restored(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("12"))
    query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
    await eventually(lambda: _sleeping(sim.dsn("12")), timeout=5, what="the query to start")
    started = time.monotonic()
    await sim.crash("12")
    with pytest.raises(CONNECTION_LOST):
        await query
    assert time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(sim.dsn("12"), timeout=5)
    assert time.monotonic() - started < 1
    state = sim.instances["12"]
    assert (state.running, state.network) == (False, "crashed")
    # the writer keeps committing without it, and the topology freezes its status timestamp
    await execute(sim.dsn("cluster"), "CREATE TABLE during(x int)", "INSERT INTO during VALUES (1)")
    rows = await _topology(sim.dsn("cluster"))
    assert set(rows) == {"11", "12", "13"}
    assert rows["12"][1] < rows["13"][1]  # type: ignore[operator]

    await sim.restore("12")
    assert await fetchval(sim.dsn("12"), IS_READER_SQL) is True
    await wait_for_table(sim.dsn("12"), "during")


async def _sleeping(dsn: str) -> bool:
    return bool(
        await fetchval(dsn, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
    )


async def test_crashed_writer_restarts_in_place_with_its_data(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("cluster"))
    await conn.execute("CREATE TABLE during(x int)")
    await conn.execute("INSERT INTO during VALUES (1)")
    await sim.crash("11")
    with pytest.raises(CONNECTION_LOST):
        await conn.fetchval("SELECT 1")
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(sim.dsn("cluster"), timeout=5)
    await sim.restore("11")
    assert sim.writer_id == "11"
    assert await fetchval(sim.dsn("cluster"), "SELECT count(*) FROM during") == 1
    assert await fetchval(sim.dsn("cluster"), IS_READER_SQL) is False


async def test_latency_slows_every_round_trip(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("13"))
    try:
        await sim.latency("13", 1.0)
        started = time.monotonic()
        await conn.fetchval("SELECT 1")
        assert time.monotonic() - started >= 0.99
        assert sim.instances["13"].latency == 1.0
        await sim.restore("13")
        started = time.monotonic()
        await conn.fetchval("SELECT 1")
        assert time.monotonic() - started < 0.5  # the 1 s delay is gone
    finally:
        await conn.close()
    with pytest.raises(ValueError, match="latency"):
        await sim.latency("13", -1)


async def test_drop_after_commit_commits_but_never_tells_the_client(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await execute(sim.dsn("cluster"), "CREATE TABLE paid(id int PRIMARY KEY)")
    conn = await connect(sim.dsn("11"))
    try:
        await sim.drop_after_commit("11")
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO paid VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM paid") == 1  # not a COMMIT: passes through
        with pytest.raises(CONNECTION_LOST):
            await conn.execute("COMMIT")
    finally:
        conn.terminate()
    assert await fetchval(sim.dsn("11"), "SELECT count(*) FROM paid") == 1  # it did commit
    # one-shot: the next COMMIT is answered
    conn = await connect(sim.dsn("11"))
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO paid VALUES (2)")
    finally:
        await conn.close()
    assert await fetchval(sim.dsn("11"), "SELECT count(*) FROM paid") == 2


async def test_reboot_drops_connections_and_keeps_roles(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    for instance_id in ("12", "11"):
        conn = await connect(sim.dsn(instance_id))
        await sim.reboot(instance_id)
        with pytest.raises(CONNECTION_LOST):
            await conn.fetchval("SELECT 1")
        conn.terminate()
        assert await fetchval(sim.dsn(instance_id), IS_READER_SQL) is (instance_id != "11")
    assert sim.writer_id == "11"
    await assert_writer_replicates(sim)
    steps = [e.step for e in sim.timeline]
    assert steps.count("instance rebooted") == 2


async def test_add_and_remove_instances(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await execute(sim.dsn("cluster"), "CREATE TABLE during(x int)")
    added = await sim.add_instance()
    assert added == "14" and sim.instance_ids == ["11", "12", "13", "14"]
    assert await fetchval(sim.dsn(added), AURORA_HOST_ID_SQL) == "14"
    assert await fetchval(sim.dsn(added), IS_READER_SQL) is True
    assert await has_table(sim.dsn(added), "during")
    assert set(await _topology(sim.dsn("cluster"))) == {"11", "12", "13", "14"}
    readers = {await fetchval(sim.dsn("reader"), AURORA_HOST_ID_SQL) for _ in range(6)}
    assert readers == {"12", "13", "14"}

    await sim.remove_instance("12")
    assert sim.instance_ids == ["11", "13", "14"]
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(f"postgresql://postgres@127.0.42.12:{sim.port}/postgres", timeout=5)
    assert set(await _topology(sim.dsn("cluster"))) == {"11", "13", "14"}

    # removing the writer fails over first, as Aurora does
    await sim.remove_instance("11")
    assert sim.writer_id in ("13", "14") and sim.instance_ids == ["13", "14"]
    rows = await _topology(sim.dsn(sim.writer_id))
    assert set(rows) == {"13", "14"} and rows[sim.writer_id][0] is True
    with pytest.raises(SimulatorError, match="unknown instance '11'"):
        await sim.crash("11")


@pytest.mark.aurora_simulator(instances=2)
async def test_cannot_remove_the_last_instance(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await sim.remove_instance("12")
    with pytest.raises(SimulatorError, match="last instance"):
        await sim.remove_instance("11")


async def test_crashed_replica_rejoins_the_writer_elected_meanwhile(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await sim.crash("13")
    report = await sim.failover()
    assert report.new_writer == "12"
    await sim.restore("13")
    assert sim.instances["13"].running
    await assert_writer_replicates(sim)


async def test_blackholed_writer_fails_over_and_stays_silent_until_restored(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    stuck = await connect(sim.dsn("11"))
    await sim.blackhole("11")
    report = await sim.failover()
    assert report.new_writer != "11"
    with pytest.raises(TimeoutError):
        await stuck.fetchval("SELECT 1", timeout=0.5)
    with pytest.raises(TimeoutError):
        await asyncpg.connect(sim.dsn("11"), timeout=0.5)
    assert sim.instances["11"].network == "blackhole" and sim.instances["11"].running
    await sim.restore("11")
    assert await fetchval(sim.dsn("11"), IS_READER_SQL) is True
    stuck.terminate()


async def test_fault_operations_reject_impossible_requests(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    with pytest.raises(SimulatorError, match="unknown instance '7'; instances are 11, 12, 13"):
        await sim.blackhole(7)
    await sim.crash("13")
    with pytest.raises(SimulatorError, match="not running"):
        await sim.crash("13")
    with pytest.raises(SimulatorError, match="restore it first"):
        await sim.blackhole("13")
    with pytest.raises(SimulatorError, match="use restore"):
        await sim.reboot("13")


async def test_reset_connections_cuts_open_sessions_only(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await execute(sim.dsn("cluster"), "CREATE TABLE reset_probe(x int)")
    victim = await connect(sim.dsn("cluster"))
    bystander = await connect(sim.dsn("12"))
    await victim.execute("BEGIN; INSERT INTO reset_probe VALUES (1)")
    pid = await victim.fetchval("SELECT pg_backend_pid()")
    await sim.reset_connections(sim.writer_id)
    with pytest.raises(CONNECTION_LOST):
        await victim.fetchval("SELECT 1", timeout=5)
    # the server stays up: a new connection works at once, and the cut session is gone, rolled back
    assert await fetchval(sim.dsn("cluster"), "SELECT count(*) FROM reset_probe") == 0

    async def session_ended() -> bool:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        return await fetchval(sim.dsn(sim.writer_id), query) == 0

    await eventually(session_ended, timeout=10)
    assert await bystander.fetchval(AURORA_HOST_ID_SQL) == "12"  # other instances are untouched
    assert sim.instances[sim.writer_id].running and sim.instances[sim.writer_id].network == "ok"
    assert any(e.step == "connections reset" for e in sim.timeline)
    victim.terminate()
    await bystander.close()


@pytest.mark.aurora_simulator(dns_delay=0.0)
async def test_dns_delay_can_change_between_failovers(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    with pytest.raises(ValueError, match="dns_delay must be a number >= 0"):
        sim.dns_delay = -1
    sim.dns_delay = 3.0
    report = await sim.failover()
    promoted = next(e.at for e in report.events if e.step == "replica promoted")
    due = next(e.at for e in report.events if e.step == "endpoint DNS updated")
    assert due == pytest.approx(promoted + 3.0)
    await sim.wait_dns_settled()
    sim.dns_delay = 0
    report = await sim.failover()
    assert await fetchval(sim.dsn("cluster"), AURORA_HOST_ID_SQL) == report.new_writer  # no lag now
