"""``python -m aurora_async.testing up`` from a shell, as root and as an ordinary user."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import site
import sys
from pathlib import Path

import pytest

from tests.helpers import AURORA_HOST_ID_SQL, eventually, fetchval, processes_mentioning

REPO = Path(__file__).resolve().parents[2]


async def _run_up(argv: list[str], env: dict[str, str]) -> None:
    """Start the CLI, use the cluster it prints, stop it with Ctrl-C and check it cleaned up."""
    proc = await asyncio.create_subprocess_exec(
        *argv, "-m", "aurora_async.testing", "up", "--instances", "2", "--dns-delay", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        start_new_session=True,  # a process group of its own, as a shell job would have
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, f"the CLI exited early: {(await proc.stderr.read()).decode()}"
                lines.append(line)
                if line.startswith("ready"):
                    break
        fields = {ln.split()[0]: ln.split() for ln in lines if ln.strip()}
        writer_dsn = fields["writer"][-1]
        root = Path(fields["data"][-1])
        assert root.is_dir()
        assert await fetchval(writer_dsn, AURORA_HOST_ID_SQL) == "11"
        assert await fetchval(fields["reader"][-1], AURORA_HOST_ID_SQL) == "12"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "stopped" in out.decode()
    assert not root.exists()

    async def gone() -> bool:
        return processes_mentioning(str(root)) == []

    await eventually(gone, timeout=10, what="the CLI's servers to stop")


async def test_up_prints_a_usable_cluster_and_stops_on_ctrl_c() -> None:
    await _run_up([sys.executable], dict(os.environ))


@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user the other test covers it")
async def test_up_as_an_ordinary_user() -> None:
    """Runs the CLI as the unprivileged ``postgres`` account with the system Python, reusing this
    virtual environment's packages (the venv's own interpreter lives under /root, out of its reach)."""
    system_python = shutil.which("python3", path="/usr/bin")
    runuser = shutil.which("runuser")
    if system_python is None or runuser is None:
        pytest.skip("needs /usr/bin/python3 and runuser")
    version = await asyncio.create_subprocess_exec(
        system_python, "-c", "import sys; print(sys.version_info[:2])", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await version.communicate()
    if out.decode().strip() != str(sys.version_info[:2]):
        pytest.skip(f"the system Python is {out.decode().strip()}, not {sys.version_info[:2]}")
    paths = [str(REPO), *site.getsitepackages()]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(paths), "LANG": "C.UTF-8"}
    await _run_up([runuser, "-u", "postgres", "--", system_python], env)


async def test_bad_arguments_exit_with_a_message() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aurora_async.testing", "up", "--instances", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "instances must be an integer from 1 to 32" in err.decode()
