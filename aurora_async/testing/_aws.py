"""Local stand-ins for AWS: moto's server on loopback, and an aioboto3 session for rehearsing IAM auth.

Neither talks to AWS. ``MotoServer`` runs moto (``pip install 'moto[server]'``) as a child process on
127.0.0.1; ``RehearsalSession`` wraps a real ``aioboto3.Session`` (real IAM token signing, which needs
no network) and makes every token it generates the database user's password on the simulator, which
is exactly what RDS would accept, so the ``iam`` plugin can be exercised end to end on a laptop.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

from .._iam_token import generate_token
from ._errors import SimulatorError
from ._process import die_with_parent, kill_and_wait, wait_until


class PasswordSetter(Protocol):
    """Where a rehearsal installs a user's password: an ``AuroraSimulator``, or anything that sets one
    the same way (a test that also records each token)."""

    async def set_password(self, user: str, password: str) -> None: ...


# Dummy credentials for moto and offline token signing; never valid anywhere.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def moto_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line of moto's server on ``host:port``."""
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


class MotoServer:
    """``async with MotoServer() as endpoint_url:`` moto's server (all services) on 127.0.0.1.

    Pass ``endpoint_url`` to clients (``secrets_manager_endpoint=`` for aurora_async). The process is
    stopped on exit, and by the kernel if this process dies.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> str:
        self._proc = await asyncio.create_subprocess_exec(
            *moto_command(self.port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        try:
            await wait_until(self._listening, timeout=30, what="moto's server to listen")
        except BaseException:
            await kill_and_wait(self._proc)
            raise
        return self.endpoint_url

    async def _listening(self) -> bool:
        if self._proc is not None and self._proc.returncode is not None:
            raise SimulatorError("moto's server exited at start-up: is 'moto[server]' installed?")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            await kill_and_wait(self._proc, signal.SIGTERM)


class RehearsalSession:
    """An ``aioboto3.Session`` for ``aws_session=``: real clients, with their AWS calls counted in
    ``calls`` (and the clients made, as ``"client <service>"``; ``open_clients`` those still open); with
    a simulator and a user, every IAM token generated becomes that user's password
    (for a MySQL IAM user, ``sim.create_iam_user``: the one token its clear-password login accepts).

    :param simulator: where to set the password (``AuroraSimulator.set_password``, or any
        :class:`PasswordSetter`).
    :param user: the database user the tokens are for.
    """

    def __init__(self, simulator: PasswordSetter | None = None, user: str | None = None) -> None:
        import aioboto3  # noqa: PLC0415 - the optional 'aws' extra

        self.session = aioboto3.Session()
        self.calls: Counter[str] = Counter()
        self.open_clients = 0  # clients made and not yet closed
        self.last_token: str | None = None  # for tests that check it never leaks; not in the repr
        self._on_token: Callable[[str], Awaitable[None]] | None = None
        if simulator is not None and user is not None:
            sim = simulator

            async def install(token: str) -> None:
                await sim.set_password(user, token)

            self._on_token = install

    def __repr__(self) -> str:
        return f"<RehearsalSession calls={dict(self.calls)}>"

    def client(self, service: str, **kwargs: Any) -> Any:
        return self._client(service, **kwargs)

    async def get_credentials(self) -> Any:
        return await self.session.get_credentials()

    async def generate_db_auth_token(
        self, *, DBHostname: str, Port: int, DBUsername: str, Region: str
    ) -> str:  # botocore's argument names
        """A token signed with this session's credentials (as aurora_async signs one), counted, and
        made the user's password on the simulator."""
        token = await generate_token(self.session, DBHostname, Port, DBUsername, Region)
        await self._observe(token)
        return token

    async def _observe(self, token: str) -> None:
        self.calls["generate_db_auth_token"] += 1
        self.last_token = token
        if self._on_token is not None:
            await self._on_token(token)

    @asynccontextmanager
    async def _client(self, service: str, **kwargs: Any) -> AsyncIterator[Any]:
        async with self.session.client(service, **kwargs) as client:
            self.calls[f"client {service}"] += 1  # clients made, per service
            self.open_clients += 1
            try:
                yield _CountedClient(client, self)
            finally:
                self.open_clients -= 1


class _CountedClient:
    def __init__(self, client: Any, owner: RehearsalSession) -> None:
        self._client = client
        self._owner = owner

    async def generate_db_auth_token(self, **kwargs: Any) -> str:
        token: str = await self._client.generate_db_auth_token(**kwargs)
        await self._owner._observe(token)
        return token

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._owner.calls[name] += 1
            return await method(*args, **kwargs)

        return counted
