"""The framework examples, imported and driven against the simulator on both engines: FastAPI, aiohttp, a
worker (the SQLAlchemy example: ``test_sqlalchemy``)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
from aiohttp.test_utils import TestClient, TestServer

import aurora_async
from aurora_async.testing import AuroraSimulator

from ._engine_ops import EngineOps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # FastAPI resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


async def test_fastapi_app_answers_every_request_across_a_failover(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    app = example("fastapi_app").create_app(
        sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://a") as client,
    ):
        assert (await client.post("/orders", params={"item": "pen"})).json()["writer"] == "11"
        ready = await client.get("/healthz")
        assert ready.status_code == 200 and ready.json()["healthy"] is True and ready.json()["writer"] == "11"
        statuses: list[int] = []
        writers: set[str] = set()

        async def customer() -> None:
            for _ in range(15):
                response = await client.post("/orders", params={"item": "book"})
                statuses.append(response.status_code)
                writers.add(response.json().get("writer", "?"))

        customers = asyncio.gather(*(customer() for _ in range(6)))
        report = await sim.failover()
        await asyncio.wait_for(customers, 60)
        assert statuses == [200] * 90 and report.new_writer in writers
        assert (await client.get("/orders/count")).json() == {"orders": 91}
        health = (await client.get("/healthz")).json()
        assert health["writer"] == report.new_writer and health["cluster"] == sim.cluster_endpoint
    assert await ops.outside(report.new_writer, "SELECT count(*) FROM orders") == 91


async def test_aiohttp_app_answers_every_request_across_a_failover(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    app = example("aiohttp_app").create_app(
        sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/healthz")
        assert response.status == 200 and (await response.json())["writer"] == sim.writer_id
        statuses: list[int] = []

        async def visitor() -> None:
            for _ in range(15):
                statuses.append((await client.post("/visits/home")).status)

        visitors = asyncio.gather(*(visitor() for _ in range(6)))
        report = await sim.failover()
        await asyncio.wait_for(visitors, 60)
        assert statuses == [200] * 90
        assert await (await client.get("/visits/count")).json() == {"visits": 90}
        health = await (await client.get("/healthz")).json()
        assert health["writer"] == report.new_writer and health["cluster"] == sim.cluster_endpoint
    assert await ops.outside(report.new_writer, "SELECT count(*) FROM visits") == 90


async def test_worker_processes_every_job_once_across_a_failover(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    worker = example("worker")
    async with aurora_async.create_pool(
        sim.dsn("cluster"), min_size=4, max_size=8, cluster_instance_host_pattern=sim.instance_host_pattern
    ) as pool:
        await worker.prepare(pool)
        failover = asyncio.ensure_future(sim.failover())
        retries = await asyncio.wait_for(worker.run(pool, 200, 8, failover), 60)
        report = failover.result()
        assert sum(retries.values()) >= 1  # the failover did interrupt jobs, and they were re-run
    assert await ops.outside(report.new_writer, "SELECT count(*) FROM jobs_done") == 200
    assert await ops.outside(report.new_writer, "SELECT count(DISTINCT job) FROM jobs_done") == 200
