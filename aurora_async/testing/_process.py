"""Child processes for the simulator: run as the right OS user, never leak on cancellation."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import pwd
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ._errors import SimulatorError

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class OsUser:
    """The operating-system account that owns and runs the database servers.

    PostgreSQL refuses to run as root (and MariaDB should not), so when the simulator runs as root it
    starts the servers as an unprivileged account (``default``, such as ``postgres`` or ``mysql``, when it
    exists, else ``nobody``); otherwise as the current user.
    """

    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    @classmethod
    def for_servers(cls, requested: str | None = None, default: str = "postgres") -> OsUser:
        name = requested or os.environ.get("AURORA_SIM_SERVER_USER")
        if name is None:
            if os.geteuid() != 0:
                entry = pwd.getpwuid(os.geteuid())
                return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
            name = default
            try:
                pwd.getpwnam(name)
            except KeyError:
                name = "nobody"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise SimulatorError(f"server user {name!r} does not exist on this machine") from None
        if entry.pw_uid == 0:
            raise SimulatorError("database servers cannot run as root; choose an unprivileged server user")
        if entry.pw_uid != os.geteuid() and os.geteuid() != 0:
            raise SimulatorError(
                f"cannot run servers as {name!r}: only root can switch users; leave the server user unset"
            )
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def chown(self, path: Path) -> None:
        if not self.is_current:
            os.chown(path, self.uid, self.gid)

    def spawn_kwargs(self, death_signal: int = signal.SIGQUIT) -> dict[str, Any]:
        """Keyword arguments for :func:`asyncio.create_subprocess_exec` that run a child as this user
        and deliver ``death_signal`` to it if the simulator's process dies first."""
        kwargs: dict[str, Any] = {"preexec_fn": die_with_parent(death_signal)}
        if not self.is_current:
            kwargs.update(user=self.uid, group=self.gid, extra_groups=[])
        return kwargs


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Resolved once in the parent: nothing may be looked up between fork and exec.
_prctl = _load_prctl()


def _set_parent_death_signal(death_signal: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)


def die_with_parent(death_signal: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel to send ``death_signal`` to the child when the simulator's
    process dies (best effort, Linux only), so a killed test run leaves no server behind.

    It runs in the child between fork and exec, after the switch to the server user. SIGQUIT makes a
    PostgreSQL postmaster do an immediate shutdown, taking its backends with it.
    """
    return functools.partial(_set_parent_death_signal, death_signal)


def open_log(path: Path) -> BinaryIO:
    """Open a child's log file for appending (the child inherits the descriptor)."""
    return open(path, "ab")


async def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` to the end even if the calling task is cancelled meanwhile.

    Used for clean-up: a cancelled test must still stop its servers. A cancellation that arrives
    while waiting is re-raised once ``coro`` has finished.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


async def run_command(
    argv: Sequence[str],
    *,
    user: OsUser,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    process_group: bool = False,
) -> str:
    """Run a short-lived command as ``user`` and return its combined output.

    Raises :class:`SimulatorError` with the command's output when it fails or outlives ``timeout``;
    kills it when the caller is cancelled. With ``process_group`` the command gets a process group of
    its own and the whole group is killed, so that a script's children die with it.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=process_group,
        **user.spawn_kwargs(),
    )

    async def kill() -> None:
        if process_group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        await kill_and_wait(proc)
        if process_group:
            await group_gone(proc.pid)

    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        await run_to_completion(kill())
        raise SimulatorError(f"{Path(argv[0]).name} did not finish within {timeout:g} s") from None
    except BaseException:
        await run_to_completion(kill())
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise SimulatorError(f"{Path(argv[0]).name} failed with exit code {proc.returncode}:\n{text.strip()}")
    return text


async def group_gone(group: int, timeout: float = 5.0) -> None:
    """Wait until no process of process group ``group`` is left: a killed member in the middle of disk
    I/O (initdb's bootstrap server fsyncing) dies only when that I/O ends, after its leader was reaped."""

    async def gone() -> bool:
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return True
        return False

    try:
        await wait_until(gone, timeout=timeout, interval=0.01, what=f"process group {group} to end")
    except SimulatorError:
        pass  # a member that does not die is the kernel's to end: nothing more to do from here


async def kill_and_wait(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """Signal ``proc`` (ignoring one that is already gone) and reap it."""
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    await proc.wait()


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    interval: float = 0.02,
    what: str,
) -> None:
    """Poll ``check`` until it is true; after ``timeout`` raise :class:`SimulatorError` naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() >= deadline:
            raise SimulatorError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
