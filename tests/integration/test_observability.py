"""The event stream and ``health()`` on the simulator, on both engines: what an application sees of a
failover and of a dead host, checked against what the servers say (the new writer really is the one the
events name), for what users vary: a pool and a connector, two identities on one cluster, two clusters."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

import aurora_async
from aurora_async import (
    Event,
    EventStream,
    FailoverStarted,
    FailoverSucceeded,
    FailoverSuccessError,
    HostDown,
    HostUp,
    IamTokenGenerated,
    SecretFetched,
    TopologyRefreshed,
    WriterChanged,
    WriterSearchFinished,
)
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

from ._engine_ops import EngineOps


async def until(
    stream: EventStream, wanted: Callable[[Event], bool], seen: list[Event], timeout: float = 20
) -> Event:
    """The first event of ``stream`` that is ``wanted`` (every event taken is kept in ``seen``)."""
    async with asyncio.timeout(timeout):
        async for event in stream:
            seen.append(event)
            if wanted(event):
                return event
    raise AssertionError(f"the stream ended without the event; saw {[e.kind for e in seen]}")


async def test_a_failover_through_a_pool_is_told_in_order_and_names_the_real_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    old = sim.writer_id
    pool = await aurora_async.create_pool(sim.dsn("cluster"), min_size=1, max_size=2, **ops.options())
    async with pool, aurora_async.events(pool) as stream:
        conn = await pool.acquire()
        assert await ops.host_id(conn) == old
        await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        now_on = await ops.host_id(conn)
        await pool.release(conn)
        seen: list[Event] = []
        succeeded = await until(stream, lambda e: isinstance(e, FailoverSucceeded), seen)
        if not any(isinstance(e, WriterChanged) for e in seen):
            await until(stream, lambda e: isinstance(e, WriterChanged), seen)
        seen.extend(stream.pending())
    assert now_on == sim.writer_id != old  # the database's own answer
    kinds = [type(e) for e in seen]
    started = next(e for e in seen if isinstance(e, FailoverStarted))
    assert kinds.index(FailoverStarted) < kinds.index(FailoverSucceeded)
    assert started.from_instance == old and started.mode == "strict_writer" and not started.in_transaction
    assert isinstance(succeeded, FailoverSucceeded)
    assert (succeeded.from_instance, succeeded.to_instance, succeeded.role) == (old, now_on, "writer")
    assert 0 < succeeded.duration < 20
    changed = next(e for e in seen if isinstance(e, WriterChanged))
    assert (changed.previous, changed.writer) == (old, now_on)
    searches = [e for e in seen if isinstance(e, WriterSearchFinished)]
    assert searches and searches[-1].writer == now_on
    assert all(e.cluster == f"{sim.cluster_endpoint}" and e.engine == sim.engine for e in seen)
    assert stream.dropped == 0


async def test_a_connector_stream_opened_before_any_connection_sees_both_identities_failovers(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """One cluster, two users: a stream on one user's connector hears the other user's failover too
    (events belong to the cluster), and was opened before the connector made anything."""
    await sim.set_password("events_other", "other-pw")
    connector = aurora_async.raw_connector(sim.dsn("cluster"), **ops.options())
    async with connector, aurora_async.events(connector) as stream:
        assert not aurora_async.health(connector).healthy  # nothing connected yet
        await ops.close_raw(await connector())  # the connector holds the cluster from now on
        other = await aurora_async.connect(
            sim.dsn("cluster"), user="events_other", password="other-pw", **ops.options()
        )
        try:
            await sim.failover()
            with pytest.raises(FailoverSuccessError):
                await ops.scalar(other, "SELECT 1")
            seen: list[Event] = []
            event = await until(stream, lambda e: isinstance(e, FailoverSucceeded), seen)
            assert isinstance(event, FailoverSucceeded) and event.to_instance == await ops.host_id(other)
        finally:
            await ops.close(other)


async def test_two_clusters_two_streams_each_hears_only_its_own(engine: str, ops: EngineOps) -> None:
    async with AuroraSimulator(engine=engine.partition("-")[0], instances=2) as second:
        first = ops.sim
        a = await aurora_async.connect(first.dsn("cluster"), **ops.options())
        b = await aurora_async.connect(
            second.dsn("cluster"),
            cluster_instance_host_pattern=second.instance_host_pattern,
            failover_timeout=20,
        )
        try:
            async with aurora_async.events(a) as on_first, aurora_async.events(b) as on_second:
                await second.failover()
                with pytest.raises(FailoverSuccessError):
                    await ops.scalar(b, "SELECT 1")
                seen: list[Event] = []
                await until(on_second, lambda e: isinstance(e, FailoverSucceeded), seen)
                assert all(e.cluster == second.cluster_endpoint for e in seen)
                heard = list(on_first.pending())
                assert not [e for e in heard if not isinstance(e, TopologyRefreshed)], heard
                assert all(e.cluster == first.cluster_endpoint for e in heard)
        finally:
            await ops.close(a)
            await ops.close(b)


@pytest.mark.aurora_simulator(instances=2)
async def test_health_follows_a_black_holed_writer_until_it_answers_again(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    writer = sim.writer_id
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=1, **ops.options()) as pool:
        await eventually(_healthy(pool), timeout=10, what="a healthy cluster")
        health = aurora_async.health(pool)
        assert health.writer == writer and {i.instance_id for i in health.instances} == set(sim.instance_ids)
        assert health.as_dict()["healthy"] is True and health.hosts_down == ()
        async with aurora_async.events(pool) as stream:
            conn = await pool.acquire()
            query = asyncio.ensure_future(ops.scalar(conn, ops.slow_sql(30)))
            await sim.blackhole(writer)
            seen: list[Event] = []
            down = await until(stream, lambda e: isinstance(e, HostDown), seen)
            assert isinstance(down, HostDown) and down.instance == writer and down.aborted >= 1
            sick = aurora_async.health(pool)
            assert writer in sick.hosts_down and not sick.healthy
            assert any("host monitoring" in p for p in sick.problems), sick.problems
            await sim.restore(writer)
            with pytest.raises(aurora_async.FailoverError):
                await query  # aborted; failed over to the writer, the same instance once it answers
            assert await ops.host_id(conn) == writer
            up = await until(stream, lambda e: isinstance(e, HostUp), seen)
            assert isinstance(up, HostUp) and up.instance == writer
            await pool.release(conn)
        await eventually(_healthy(pool), timeout=20, what="healthy again")
        assert aurora_async.health(pool).hosts_down == ()
    closed = aurora_async.health(pool)
    assert not closed.healthy and "closed" in closed.problems[0]


def _healthy(target: Any) -> Callable[[], Any]:
    async def check() -> bool:
        return aurora_async.health(target).healthy

    return check


def test_events_and_health_refuse_what_is_not_ours() -> None:
    with pytest.raises(aurora_async.ConfigurationError, match="events\\(\\) and health\\(\\)"):
        aurora_async.health(object())  # type: ignore[arg-type]
    connector = aurora_async.raw_connector("postgresql://u@h/db")
    with pytest.raises(aurora_async.ConfigurationError, match="buffer"):
        aurora_async.events(connector, buffer=0)


@pytest.mark.aurora_simulator(instances=2)
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_a_dead_host_left_by_every_connection_is_probed_until_it_answers(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """Once its connections failed over elsewhere, a host declared dead is still probed: when it
    answers again the cluster stops routing new connections around it (and says so: HostUp)."""
    old = sim.writer_id
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=1, **ops.options()) as pool:
        async with aurora_async.events(pool) as stream:
            conn = await pool.acquire()
            query = asyncio.ensure_future(ops.scalar(conn, ops.slow_sql(30)))
            await sim.blackhole(old)
            seen: list[Event] = []
            await until(stream, lambda e: isinstance(e, HostDown), seen)
            await sim.failover()
            with pytest.raises(aurora_async.FailoverError):
                await query
            assert await ops.host_id(conn) == sim.writer_id != old  # no connection is left on the old one
            await pool.release(conn)
            assert old in aurora_async.health(pool).hosts_down
            await sim.restore(old)
            up = await until(stream, lambda e: isinstance(e, HostUp), seen)
            assert isinstance(up, HostUp) and up.instance == old
        assert aurora_async.health(pool).hosts_down == ()


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_the_observability_example_tells_the_whole_story(engine: str) -> None:
    from tests.integration.test_examples import _run

    text = await _run("observability.py", "--engine", engine, "--otel")
    counts = dict(re.findall(r"(\w+)=(\d+)", text.split("events: ")[1].split(";")[0]))
    assert counts["host_down"] == counts["host_up"] == counts["writer_changed"] == "1", text
    assert counts["failover_started"] == counts["failover_succeeded"] and int(counts["failover_started"]) >= 1
    assert "dropped: 0" in text and "health UNHEALTHY" in text, text
    assert text.splitlines()[-1].startswith("span   aurora_async.failover > aurora_async.writer_search")
    health_lines = [line for line in text.splitlines() if line.startswith("health ")]
    assert health_lines[0].startswith("health healthy") and health_lines[-1].endswith("down=[]"), text
    metric = dict(re.findall(r"metric (\S+) (\d+)", text))
    assert metric["aurora_async.failover.completed"] == metric["aurora_async.failover.started"], text


async def test_credential_fetches_are_told_once_per_fetch_and_never_carry_the_secret(
    aurora_postgres: AuroraSimulator, moto_endpoint: str
) -> None:
    """Twenty connections of an IAM user share one token, and of a Secrets Manager user one secret: one
    event each, naming what was fetched and nothing secret."""
    import json

    from aurora_async.testing import RehearsalSession
    from tests.aws import put_secret
    from tests.integration.test_credentials import (
        APP_USER,
        IAM_USER,
        iam_options,
        secret_options,
        token_becomes_password,
    )

    sim = aurora_postgres
    iam = token_becomes_password(sim)
    await sim.set_password(APP_USER, "events-password-1")
    arn = await put_secret(
        "aurora/events", json.dumps({"username": APP_USER, "password": "events-password-1"})
    )
    secrets = RehearsalSession()
    seen: list[Event] = []
    for options in (
        iam_options(sim, iam),
        secret_options(sim, secrets, arn, secrets_manager_endpoint=moto_endpoint),
    ):
        connector = aurora_async.raw_connector(**options)
        async with connector, aurora_async.events(connector) as stream:
            raws = await asyncio.gather(*(connector() for _ in range(20)))
            await asyncio.gather(*(raw.close() for raw in raws))
            seen.extend(stream.pending())
    tokens = [e for e in seen if isinstance(e, IamTokenGenerated)]
    fetched = [e for e in seen if isinstance(e, SecretFetched)]
    assert len(tokens) == iam.calls["generate_db_auth_token"] == 1
    assert (tokens[0].user, tokens[0].host, tokens[0].region) == (IAM_USER, "db.test.internal", "us-east-1")
    assert len(fetched) == secrets.calls["get_secret_value"] == 1 and fetched[0].secret_id == arn
    assert "events-password-1" not in repr(seen)
