"""Failover and switchover on the simulator, observed with plain asyncpg."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from dataclasses import dataclass, field

import asyncpg
import pytest

from aurora_async.testing import AuroraSimulator, FailoverReport, SimulatorError
from tests.helpers import (
    AURORA_HOST_ID_SQL,
    AURORA_TOPOLOGY_SQL,
    CONNECTION_LOST,
    IS_READER_SQL,
    assert_writer_replicates,
    connect,
    eventually,
    fetchval,
)

FAILOVER_STEPS = [
    "writer lost",
    "replica promoted",
    "topology updated",
    "replicas re-pointed",
    "old writer rejoined",
]


@dataclass
class WriteLog:
    acknowledged: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)  # the INSERT was sent, then the connection broke
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


async def _writer(dsn: str, log: WriteLog, stop: asyncio.Event) -> None:
    """Insert rows one at a time through ``dsn`` until ``stop``; reconnect after any failure."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.sleep(0.02)
            continue
        try:
            while not stop.is_set():
                row_id = next(log.ids)
                try:
                    await conn.execute("INSERT INTO ledger VALUES ($1)", row_id, timeout=2)
                except asyncpg.ReadOnlySQLTransactionError:
                    break  # reached a replica through a stale endpoint: nothing was written
                except (*CONNECTION_LOST, asyncpg.PostgresError, TimeoutError):
                    log.unknown.add(row_id)
                    break
                log.acknowledged.add(row_id)
        finally:
            conn.terminate()
        await asyncio.sleep(0.01)


async def _run_with_writers(sim: AuroraSimulator, kind: str) -> tuple[FailoverReport, WriteLog]:
    conn = await connect(sim.dsn("cluster"))
    await conn.execute("CREATE TABLE ledger(id bigint PRIMARY KEY)")
    await conn.close()
    log, stop = WriteLog(), asyncio.Event()
    writers = [asyncio.create_task(_writer(sim.dsn("cluster"), log, stop)) for _ in range(8)]
    try:
        await eventually(lambda: _at_least(log, 200), timeout=20, what="writes before the failover")
        report = await (sim.failover() if kind == "failover" else sim.switchover())
        await sim.wait_dns_settled()
        after = len(log.acknowledged)
        await eventually(lambda: _at_least(log, after + 200), timeout=20, what="writes on the new writer")
    finally:
        stop.set()
        await asyncio.gather(*writers)
    return report, log


async def _at_least(log: WriteLog, count: int) -> bool:
    return len(log.acknowledged) >= count


@pytest.mark.parametrize("kind", ["failover", "switchover"])
@pytest.mark.aurora_simulator(dns_delay=0.3)
async def test_no_acknowledged_commit_is_lost(aurora_postgres: AuroraSimulator, kind: str) -> None:
    sim = aurora_postgres
    report, log = await _run_with_writers(sim, kind)

    assert report.old_writer == "11"
    assert report.new_writer in ("12", "13")
    assert sim.writer_id == report.new_writer
    steps = [e.step for e in report.events if e.step != "endpoint DNS updated"]
    first = "writer lost" if kind == "failover" else "writer stopped"
    assert steps == [first, *FAILOVER_STEPS[1:]]
    assert report.events == sorted(report.events, key=lambda e: e.at)

    present = {r[0] for r in await _fetch(sim.dsn(sim.writer_id), "SELECT id FROM ledger")}
    missing = log.acknowledged - present
    phantom = present - log.acknowledged - log.unknown
    assert not missing, f"{len(missing)} acknowledged commits lost"
    assert not phantom, f"{len(phantom)} rows nobody wrote"
    # every instance, the rejoined old writer included, converges on the same rows
    for instance_id in sim.instance_ids:
        await eventually(
            functools.partial(_has_rows, sim.dsn(instance_id), len(present)),
            timeout=10,
            what=f"rows on {instance_id}",
        )


async def _fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def _has_rows(dsn: str, count: int) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM ledger") == count


async def test_old_writer_rejoins_as_a_replica(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    report = await sim.failover()
    old, new = report.old_writer, report.new_writer
    assert sim.instances[old].role == "reader" and sim.instances[old].running
    assert await fetchval(sim.dsn(old), IS_READER_SQL) is True
    assert await fetchval(sim.dsn(new), IS_READER_SQL) is False
    rows = await _fetch(sim.dsn(old), AURORA_TOPOLOGY_SQL)
    assert [r[0] for r in rows if r[1]] == [new]
    assert sorted(r[0] for r in rows) == sim.instance_ids
    await assert_writer_replicates(sim)


@pytest.mark.aurora_simulator(dns_delay=4.0)
async def test_writer_endpoint_is_stale_for_dns_delay(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    report = await sim.failover()
    promoted = next(e.at for e in report.events if e.step == "replica promoted")
    due = next(e.at for e in report.events if e.step == "endpoint DNS updated")
    assert due == pytest.approx(promoted + 4.0)
    assert time.monotonic() < due - 0.5, "the failover itself took longer than the DNS delay"
    # stale: the writer endpoint still leads to the old writer, which is a replica now
    conn = await connect(sim.dsn("cluster"))
    try:
        assert await conn.fetchval(AURORA_HOST_ID_SQL) == report.old_writer
        assert await conn.fetchval(IS_READER_SQL) is True
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("CREATE TABLE t(x int)")
    finally:
        await conn.close()
    stale_readers = {await fetchval(sim.dsn("reader"), AURORA_HOST_ID_SQL) for _ in range(4)}
    assert stale_readers <= {"12", "13"}
    assert time.monotonic() < due, "checks ran past the DNS delay; the test proves nothing"

    await sim.wait_dns_settled()
    assert time.monotonic() >= due
    assert await fetchval(sim.dsn("cluster"), AURORA_HOST_ID_SQL) == report.new_writer
    fresh_readers = {await fetchval(sim.dsn("reader"), AURORA_HOST_ID_SQL) for _ in range(4)}
    assert fresh_readers == set(sim.reader_ids)
    assert report.new_writer not in fresh_readers


async def test_failover_to_a_chosen_replica_and_back(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    first = await sim.failover(target="13")
    assert (first.old_writer, first.new_writer) == ("11", "13")
    second = await sim.failover(target=11)
    assert (second.old_writer, second.new_writer) == ("13", "11")
    assert sim.writer_id == "11" and sim.reader_ids == ["12", "13"]
    for instance_id in sim.instance_ids:
        assert await fetchval(sim.dsn(instance_id), IS_READER_SQL) is (instance_id != "11")
    await assert_writer_replicates(sim)


async def test_failover_rejects_bad_targets(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    with pytest.raises(SimulatorError, match="is the writer already"):
        await sim.failover(target="11")
    with pytest.raises(SimulatorError, match="unknown instance '99'"):
        await sim.failover(target="99")
    await sim.crash("12")
    with pytest.raises(SimulatorError, match="not a running replica"):
        await sim.failover(target="12")
    assert sim.writer_id == "11"


@pytest.mark.aurora_simulator(instances=1)
async def test_lone_writer_restarts_in_place(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("cluster"))
    await conn.execute("CREATE TABLE kept(x int)")
    await conn.execute("INSERT INTO kept VALUES (1)")
    report = await sim.failover()
    assert (report.old_writer, report.new_writer) == ("11", "11")
    assert [e.step for e in report.events] == ["writer lost", "writer restarted in place"]
    with pytest.raises(CONNECTION_LOST):
        await conn.fetchval("SELECT 1")
    assert await fetchval(sim.dsn("cluster"), "SELECT count(*) FROM kept") == 1


async def test_switchover_terminates_sessions_with_an_error(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await connect(sim.dsn("11"))
    query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
    await eventually(lambda: _sleeping(sim.dsn("11")), timeout=5, what="the query to start")
    started = time.monotonic()
    await sim.switchover()
    with pytest.raises((asyncpg.AdminShutdownError, *CONNECTION_LOST)):
        await query
    assert time.monotonic() - started < 10
    conn.terminate()


async def _sleeping(dsn: str) -> bool:
    return bool(
        await fetchval(dsn, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
    )


async def _detach_replica(sim: AuroraSimulator, replica: str) -> None:
    """Stop a replica's WAL receiver, so that it falls behind (the writer keeps committing)."""
    conn = await connect(sim.dsn(replica))
    try:
        await conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        await conn.execute("SELECT pg_catalog.pg_reload_conf()")
    finally:
        await conn.close()

    async def stopped() -> bool:
        return await fetchval(sim.dsn(replica), "SELECT count(*) FROM pg_stat_wal_receiver") == 0

    await eventually(stopped, timeout=10, what=f"replica {replica} to stop streaming")


@pytest.mark.parametrize("target", [None, "13"])
async def test_promotion_never_loses_commits_of_a_lagging_replica(
    aurora_postgres: AuroraSimulator, target: str | None
) -> None:
    sim = aurora_postgres
    await _detach_replica(sim, "13")
    conn = await connect(sim.dsn("cluster"))
    await conn.execute("CREATE TABLE ledger(id bigint PRIMARY KEY)")
    await conn.execute("INSERT INTO ledger SELECT generate_series(1, 1000)")
    await conn.close()
    assert await fetchval(sim.dsn("13"), "SELECT to_regclass('ledger') IS NULL") is True  # 13 lags
    report = await sim.failover(target=target)
    # without a target the most advanced replica wins; a lagging target first catches up
    assert report.new_writer == (target or "12")
    steps = [e.step for e in report.events]
    assert ("replica caught up" in steps) is (target == "13")
    assert await fetchval(sim.dsn(report.new_writer), "SELECT count(*) FROM ledger") == 1000
