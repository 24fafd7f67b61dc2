"""Parent-side handle on the fault proxy process."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from pathlib import Path
from typing import Any

from .._errors import SimulatorError
from .._process import die_with_parent, kill_and_wait, open_log, run_to_completion

_REPLY_TIMEOUT = 10.0


class ProxyProcess:
    """Starts ``proxy._main`` in a child process and sends it commands, one at a time.

    Every call waits for the matching reply under a deadline; a reply left behind by a cancelled call
    is skipped by the next one (replies carry the request id).
    """

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        with open_log(self._log_path) as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aurora_async.testing.proxy._main",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # Ctrl-C goes to the simulator, which then stops the proxy
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        await self._read_reply(0)

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its reply; raise :class:`SimulatorError` if it failed."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise SimulatorError("the fault proxy is not running")
        async with self._lock:
            request_id = next(self._ids)
            proc.stdin.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
            try:
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                raise SimulatorError(self._died_message()) from None
            reply = await self._read_reply(request_id)
        if not reply.get("ok"):
            raise SimulatorError(f"fault proxy: {reply.get('error', 'unknown error')}")
        return reply

    async def _read_reply(self, request_id: int) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            async with asyncio.timeout(_REPLY_TIMEOUT):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        raise SimulatorError(self._died_message())
                    reply: dict[str, Any] = json.loads(line)
                    if reply.get("id") == request_id:
                        return reply
        except TimeoutError:
            raise SimulatorError(f"the fault proxy did not answer within {_REPLY_TIMEOUT:g} s") from None

    def _died_message(self) -> str:
        try:
            tail = self._log_path.read_text(errors="replace")[-2000:]
        except OSError:
            tail = ""
        return "the fault proxy process exited unexpectedly" + (f":\n{tail}" if tail.strip() else "")

    async def close(self) -> None:
        """Stop the proxy: every proxied connection is reset, every listener closed. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return

        async def stop() -> None:
            if proc.returncode is None and proc.stdin is not None:
                try:
                    proc.stdin.close()  # EOF: the proxy resets its links and exits
                except (BrokenPipeError, ConnectionResetError):
                    pass
                try:
                    async with asyncio.timeout(5):
                        await proc.wait()
                except TimeoutError:
                    pass
            await kill_and_wait(proc)

        await run_to_completion(stop())
