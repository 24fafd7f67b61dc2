"""The fault proxy process against a plain TCP echo server (no database involved)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aurora_async.testing import SimulatorError
from aurora_async.testing.proxy._client import ProxyProcess
from tests.helpers import eventually, process_exists

HOST = "127.0.43.11"
OTHER = "127.0.43.12"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def proxy(tmp_path: Path, echo_port: int) -> AsyncIterator[tuple[ProxyProcess, int]]:
    proc = ProxyProcess(tmp_path / "proxy.log")
    await proc.start()
    try:
        await proc.call("backend", name="a", host="127.0.0.1", port=echo_port)
        reply = await proc.call("listen", name="a", host=HOST, port=0, targets=["a"])
        yield proc, reply["port"]
    finally:
        await proc.close()


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), 5)


async def test_forwards_bytes_both_ways(proxy: tuple[ProxyProcess, int]) -> None:
    _, port = proxy
    reader, writer = await asyncio.open_connection(HOST, port)
    payload = bytes(range(256)) * 4096  # 1 MiB, more than any socket buffer
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 10) == payload
    writer.close()


async def test_delay_adds_latency_each_way(proxy: tuple[ProxyProcess, int]) -> None:
    proc, port = proxy
    reader, writer = await asyncio.open_connection(HOST, port)
    await proc.call("delay", name="a", seconds=0.5)
    started = time.monotonic()
    assert await _round_trip(reader, writer, b"ping") == b"ping"
    assert time.monotonic() - started >= 0.99
    await proc.call("delay", name="a", seconds=0)
    started = time.monotonic()
    await _round_trip(reader, writer, b"ping")
    assert time.monotonic() - started < 0.5  # the 1 s delay is gone
    writer.close()


async def test_blackhole_stops_bytes_and_restore_delivers_them(proxy: tuple[ProxyProcess, int]) -> None:
    proc, port = proxy
    reader, writer = await asyncio.open_connection(HOST, port)
    await proc.call("mode", name="a", mode="blackhole")
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)
    # a new connection is accepted but nothing comes back either
    r2, w2 = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
    w2.write(b"second")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r2.readexactly(6), 0.3)
    await proc.call("mode", name="a", mode="up")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
    assert await asyncio.wait_for(r2.readexactly(6), 5) == b"second"
    writer.close()
    w2.close()


async def test_down_resets_connections_and_refuses_new_ones(proxy: tuple[ProxyProcess, int]) -> None:
    proc, port = proxy
    reader, writer = await asyncio.open_connection(HOST, port)
    await _round_trip(reader, writer, b"x")
    await proc.call("mode", name="a", mode="down")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    await proc.call("mode", name="a", mode="up")
    reader, writer = await asyncio.open_connection(HOST, port)
    assert await _round_trip(reader, writer, b"back") == b"back"
    writer.close()
    status = await proc.call("status")
    assert status["backends"]["a"]["mode"] == "up"


async def test_reset_cuts_connections_but_keeps_listening(proxy: tuple[ProxyProcess, int]) -> None:
    proc, port = proxy
    reader, writer = await asyncio.open_connection(HOST, port)
    await _round_trip(reader, writer, b"x")
    await proc.call("reset", name="a")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    reader, writer = await asyncio.open_connection(HOST, port)
    assert await _round_trip(reader, writer, b"y") == b"y"
    writer.close()


async def test_routes_round_robin_and_at_a_future_time(tmp_path: Path) -> None:
    servers = []
    ports = []
    for tag in (b"A", b"B"):

        async def tagged(r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes = tag) -> None:
            w.write(tag)
            await w.drain()
            w.close()

        server = await asyncio.start_server(tagged, "127.0.0.1", 0)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    proc = ProxyProcess(tmp_path / "proxy.log")
    await proc.start()
    try:
        await proc.call("backend", name="a", host="127.0.0.1", port=ports[0])
        await proc.call("backend", name="b", host="127.0.0.1", port=ports[1])
        port = (await proc.call("listen", name="rr", host=OTHER, port=0, targets=["a", "b"]))["port"]

        async def tag_of_new_connection() -> bytes:
            reader, writer = await asyncio.open_connection(OTHER, port)
            data = await asyncio.wait_for(reader.read(1), 5)
            writer.close()
            return data

        assert {await tag_of_new_connection() for _ in range(4)} == {b"A", b"B"}
        # a backend that is down is skipped
        await proc.call("mode", name="a", mode="down")
        assert {await tag_of_new_connection() for _ in range(4)} == {b"B"}
        await proc.call("mode", name="a", mode="up")
        # a route change scheduled 0.4 s ahead applies then, not before
        loop = asyncio.get_running_loop()
        at = loop.time() + 0.4
        await proc.call("route", name="rr", targets=["a"], at=at)
        assert (await proc.call("status"))["listeners"]["rr"]["pending"] == ["a"]

        async def only_a() -> bool:
            return {await tag_of_new_connection() for _ in range(2)} == {b"A"}

        await eventually(only_a, timeout=5, what="the scheduled route")
        assert loop.time() >= at
        # all targets down: the listener stops listening
        await proc.call("mode", name="a", mode="down")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(OTHER, port)
    finally:
        await proc.close()
        for server in servers:
            server.close()


async def test_errors_are_reported_not_fatal(proxy: tuple[ProxyProcess, int]) -> None:
    proc, port = proxy
    with pytest.raises(SimulatorError, match="unknown backend 'nope'"):
        await proc.call("mode", name="nope", mode="down")
    with pytest.raises(SimulatorError, match="mode must be one of"):
        await proc.call("mode", name="a", mode="sideways")
    with pytest.raises(SimulatorError, match="already in use"):
        await proc.call("listen", name="dup", host=HOST, port=port, targets=["a"])
    with pytest.raises(SimulatorError, match="unknown operation"):
        await proc.call("explode")
    assert (await proc.call("status"))["backends"]["a"]["mode"] == "up"


async def test_process_exits_when_closed(tmp_path: Path) -> None:
    proc = ProxyProcess(tmp_path / "proxy.log")
    await proc.start()
    pid = proc.pid
    assert pid is not None and process_exists(pid)
    await proc.close()
    assert not process_exists(pid)
    with pytest.raises(SimulatorError, match="not running"):
        await proc.call("status")


async def test_scheduled_route_and_commands_never_race_to_bind(tmp_path: Path, echo_port: int) -> None:
    """A route change firing while a command re-binds the same listener must not bind it twice."""
    proc = ProxyProcess(tmp_path / "proxy.log")
    await proc.start()
    try:
        await proc.call("backend", name="a", host="127.0.0.1", port=echo_port)
        await proc.call("backend", name="b", host="127.0.0.1", port=echo_port)
        port = (await proc.call("listen", name="ep", host=OTHER, port=0, targets=["a"]))["port"]
        loop = asyncio.get_running_loop()
        for attempt in range(30):
            await proc.call("mode", name="a", mode="down")  # the endpoint stops listening
            await proc.call("route", name="ep", targets=["b"], at=loop.time() + 0.002 * (attempt % 5))
            await proc.call("mode", name="b", mode="up")  # re-binds the endpoint, maybe as the route fires
            await proc.call("mode", name="a", mode="up")
            await proc.call("route", name="ep", targets=["a"])
        status = await proc.call("status")
        assert status["listeners"]["ep"]["listening"]
        reader, writer = await asyncio.open_connection(OTHER, port)
        assert await _round_trip(reader, writer, b"ok") == b"ok"
        writer.close()
    finally:
        await proc.close()
    assert "route change" not in (tmp_path / "proxy.log").read_text()
