"""Entry point of the fault proxy process: ``python -m aurora_async.testing.proxy._main``.

Reads one JSON command per line on stdin and answers one JSON line per command on stdout, echoing the
command's ``id``. It exits when stdin closes, so it never outlives the simulator that started it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ._engine import ProxyCommandError, ProxyEngine


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    engine = ProxyEngine()
    _reply({"id": 0, "ok": True, "ready": True})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            request_id = request.get("id")
            if request.get("op") == "shutdown":
                await engine.close()
                _reply({"id": request_id, "ok": True})
                return
            try:
                result = await engine.handle(request)
            except (ProxyCommandError, KeyError, TypeError, ValueError) as exc:
                _reply({"id": request_id, "ok": False, "error": str(exc) or type(exc).__name__})
            else:
                _reply({"id": request_id, "ok": True, **result})
    finally:
        await engine.close()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
