"""Start-up, clean-up and bad input: nothing is ever left running, every error names the problem."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from aurora_async.testing._templates import PREFIX as TEMPLATE_PREFIX
from tests.helpers import AURORA_HOST_ID_SQL, Leftovers, eventually, fetchval, processes_mentioning


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A short private directory for the simulator's temp dir (Unix socket paths must stay short)."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="sim-test-", dir=parent))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _assert_nothing_in(base_dir: Path) -> None:
    """Nothing left but finished data-directory templates (kept on purpose, for the next simulator)."""
    left = [p for p in base_dir.iterdir() if not re.fullmatch(rf"{TEMPLATE_PREFIX}pg-[0-9a-f]{{16}}", p.name)]
    assert left == [], "the simulator left files behind"

    async def no_process() -> bool:
        # every process was killed and waited for; one killed in the middle of I/O (initdb's, once)
        # leaves the process table a moment after its group was seen gone: allow that moment only
        return processes_mentioning(str(base_dir)) == []

    await eventually(no_process, timeout=5.0, what=f"no process mentioning {base_dir} left")


async def test_clean_exit_leaves_nothing_behind(base_dir: Path) -> None:
    async with AuroraSimulator(instances=2, base_dir=base_dir) as sim:
        leftovers = Leftovers(sim)
        assert sim.root.parent == base_dir
        assert len(sim.process_ids) == 3  # two postmasters and the proxy
        assert await fetchval(sim.dsn("cluster"), AURORA_HOST_ID_SQL) == "11"
    await leftovers.assert_none()
    await _assert_nothing_in(base_dir)


async def test_an_error_in_the_body_propagates_and_cleans_up(base_dir: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        async with AuroraSimulator(instances=2, base_dir=base_dir) as sim:
            leftovers = Leftovers(sim)
            _ = 1 / 0
    await leftovers.assert_none()
    await _assert_nothing_in(base_dir)


async def test_cancellation_in_the_body_cleans_up(base_dir: Path) -> None:
    ready = asyncio.Event()
    captured: list[Leftovers] = []

    async def body() -> None:
        async with AuroraSimulator(instances=2, base_dir=base_dir) as sim:
            captured.append(Leftovers(sim))
            ready.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await asyncio.wait_for(ready.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await captured[0].assert_none()
    await _assert_nothing_in(base_dir)


def _started_dir(base_dir: Path) -> bool:
    return any(base_dir.iterdir())


def _server_program_running(base_dir: Path) -> bool:
    return bool(processes_mentioning(str(base_dir)))


def _replicas_copied(base_dir: Path) -> bool:
    return any(base_dir.glob("*/instance-13/data"))


@pytest.mark.parametrize("stage", [_started_dir, _server_program_running, _replicas_copied])
async def test_cancellation_during_start_up_cleans_up(base_dir: Path, stage: Callable[[Path], bool]) -> None:
    async def body() -> None:
        async with AuroraSimulator(instances=3, base_dir=base_dir):
            pytest.fail("start-up should have been cancelled")

    task = asyncio.ensure_future(body())

    async def reached() -> bool:
        return stage(base_dir)

    await eventually(reached, timeout=30, what=stage.__name__)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_nothing_in(base_dir)


async def test_a_second_cancellation_does_not_interrupt_clean_up(base_dir: Path) -> None:
    ready = asyncio.Event()

    async def body() -> None:
        async with AuroraSimulator(instances=2, base_dir=base_dir):
            ready.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await asyncio.wait_for(ready.wait(), 30)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_nothing_in(base_dir)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"engine": "oracle"}, ValueError, "unknown engine 'oracle'"),
        ({"instances": 0}, ValueError, "instances must be an integer from 1 to 32"),
        ({"instances": 33}, ValueError, "instances must be an integer from 1 to 32"),
        ({"instances": "3"}, ValueError, "instances must be an integer"),
        ({"topology": "global"}, ValueError, "topology must be one of aurora, multi-az, none"),
        ({"dns_delay": -1}, ValueError, "dns_delay must be >= 0"),
        ({"address_prefix": "10.0.0."}, ValueError, "loopback"),
        ({"address_prefix": "127.0."}, ValueError, "three octets"),
        ({"user": "bad-name"}, ValueError, "user must be a plain SQL identifier"),
        ({"port": 70000}, ValueError, "port must be between 1 and 65535"),
    ],
)
async def test_bad_arguments_are_named(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        async with AuroraSimulator(**kwargs):  # type: ignore[arg-type]
            pytest.fail("should not start")


async def test_missing_binaries_are_named(base_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        SimulatorError, match=r"PostgreSQL server binary 'initdb' not found .*apt-get install"
    ):
        async with AuroraSimulator(pg_bin_dir=tmp_path, base_dir=base_dir):
            pytest.fail("should not start")
    await _assert_nothing_in(base_dir)


async def test_an_address_in_use_is_named(base_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.42.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        with pytest.raises(SimulatorError, match=f"address 127.0.42.1:{port} is already in use"):
            async with AuroraSimulator(port=port, base_dir=base_dir):
                pytest.fail("should not start")
    await _assert_nothing_in(base_dir)


async def test_a_simulator_is_used_only_inside_its_context(base_dir: Path) -> None:
    sim = AuroraSimulator(instances=1, base_dir=base_dir)
    with pytest.raises(SimulatorError, match="not running"):
        sim.dsn()
    with pytest.raises(SimulatorError, match="not running"):
        await sim.failover()
    async with sim:
        assert "writer=11" in repr(sim)
    with pytest.raises(SimulatorError, match="not running"):
        await sim.crash("11")
    with pytest.raises(SimulatorError, match="only once"):
        async with sim:
            pass


async def test_directories_of_dead_simulators_are_swept(base_dir: Path) -> None:
    dead_pid = 2**22 + 17  # above the default pid_max: no such process
    stale = base_dir / f"aurora-sim-{dead_pid}-abcdefgh"
    (stale / "instance-11" / "data").mkdir(parents=True)
    alive = base_dir / f"aurora-sim-{os.getpid()}-zzzzzzzz"
    alive.mkdir()
    async with AuroraSimulator(instances=1, base_dir=base_dir):
        assert not stale.exists()
        assert alive.exists()
    alive.rmdir()


async def test_servers_die_with_a_killed_simulator_process(base_dir: Path) -> None:
    """The kernel stops the servers and the proxy when the process that started them is killed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aurora_async.testing",
        "up",
        "--instances",
        "2",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "AURORA_SIM_BASE_DIR": str(base_dir)},
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"ready" not in (line := await proc.stdout.readline()):
                assert line, "the CLI exited before it was ready"
        assert processes_mentioning(str(base_dir))
    finally:
        proc.kill()
        await proc.wait()

    async def all_gone() -> bool:
        return processes_mentioning(str(base_dir)) == []

    await eventually(all_gone, timeout=30, what="the orphaned servers to stop")
