"""AWS stand-ins for the credential tests: moto's server on loopback, and a session that counts calls.

Nothing here talks to AWS: moto runs as a child process on 127.0.0.1, the environment's credentials
are dummies, ``AWS_ENDPOINT_URL`` points every client without its own endpoint at moto, and the
instance-metadata lookup is off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import pytest

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server (a child process) for the whole test session."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*DUMMY_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(DUMMY_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto's server did not start")
                time.sleep(0.05)  # a sync session fixture polling for a port, with a deadline
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CountingSession:
    """A real ``aioboto3.Session`` whose clients count their AWS calls; an optional async hook sees every
    generated IAM token (the tests use it to make the token the database user's password)."""

    def __init__(self, on_token: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.session = aioboto3.Session()
        self.calls: Counter[str] = Counter()
        self.on_token = on_token

    @asynccontextmanager
    async def _client(self, service: str, **kwargs: Any) -> Any:
        async with self.session.client(service, **kwargs) as client:
            yield _Counted(client, self)

    def client(self, service: str, **kwargs: Any) -> Any:
        return self._client(service, **kwargs)


class _Counted:
    def __init__(self, client: Any, owner: CountingSession) -> None:
        self._client = client
        self._owner = owner

    async def generate_db_auth_token(self, **kwargs: Any) -> str:
        self._owner.calls["generate_db_auth_token"] += 1
        token: str = await self._client.generate_db_auth_token(**kwargs)
        if self._owner.on_token is not None:
            await self._owner.on_token(token)
        return token

    async def get_secret_value(self, **kwargs: Any) -> Any:
        self._owner.calls["get_secret_value"] += 1
        return await self._client.get_secret_value(**kwargs)
