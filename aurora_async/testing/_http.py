"""A small HTTP server on loopback for the simulator's AWS stand-ins (the Data API emulator, the RDS
control plane): aiohttp's low-level server (aiohttp comes with aiobotocore), imported when one starts."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


async def serve_on_loopback(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], *, shutdown_timeout: float = 1.0
) -> tuple[web.ServerRunner, int]:
    """Serve ``handler`` on ``127.0.0.1`` at a port the kernel picks: the runner (``await
    runner.cleanup()`` stops it) and the port."""
    from aiohttp import web  # noqa: PLC0415 - only the AWS stand-ins need aiohttp

    runner = web.ServerRunner(web.Server(handler, access_log=None), shutdown_timeout=shutdown_timeout)
    await runner.setup()
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, int(sock.getsockname()[1])
