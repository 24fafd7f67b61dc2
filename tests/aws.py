"""The moto_endpoint fixture: moto's server on loopback for the credential tests' whole session.

Nothing here talks to AWS: moto runs as a child process on 127.0.0.1, the environment's credentials
are dummies, ``AWS_ENDPOINT_URL`` points every client without its own endpoint at moto, and the
instance-metadata lookup is off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from aurora_async.testing import DUMMY_AWS_ENV
from aurora_async.testing._aws import free_port, moto_command


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server (a child process) for the whole test session."""
    port = free_port()
    proc = subprocess.Popen(moto_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*DUMMY_AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(DUMMY_AWS_ENV, AWS_ENDPOINT_URL=endpoint)
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


async def put_secret(name: str, value: str) -> str:
    """Create (or overwrite) secret ``name`` in moto's server; its ARN (its name when it existed)."""
    import aioboto3

    async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as client:
        try:
            created = await client.create_secret(Name=name, SecretString=value)
        except client.exceptions.ResourceExistsException:
            await client.put_secret_value(SecretId=name, SecretString=value)
            return name
        return str(created["ARN"])
