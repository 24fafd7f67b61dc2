"""The simulator's per-instance faults (crash, black hole, latency, resets, a dropped COMMIT reply,
Serverless v2 auto-pause, restore, reboot): the methods of ``AuroraSimulator`` that break one instance's
server or network and mend it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ._control_plane import ControlPlane


class Faults:
    """The fault methods of :class:`AuroraSimulator` (which provides :meth:`_operation`)."""

    _operation: Callable[[], AbstractAsyncContextManager[ControlPlane]]

    async def crash(self, instance_id: str | int) -> None:
        """Kill the instance's server: its connections are reset, new connects are refused.

        A crashed writer stays down (no failover) until :meth:`restore` or :meth:`failover`."""
        async with self._operation() as control:
            await control.crash(instance_id)

    async def blackhole(self, instance_id: str | int) -> None:
        """Silence the instance's network: bytes stop both ways, sockets stay open, new connects hang."""
        async with self._operation() as control:
            await control.blackhole(instance_id)

    async def latency(self, instance_id: str | int, seconds: float) -> None:
        """Add ``seconds`` to every round trip to the instance (half each way); 0 removes it."""
        async with self._operation() as control:
            await control.latency(instance_id, seconds)

    async def reset_connections(self, instance_id: str | int) -> None:
        """Reset every open connection through the instance's endpoint (TCP RST to both ends), as a
        network blip or a middlebox would; the server keeps running and new connections work at once."""
        async with self._operation() as control:
            await control.reset_connections(instance_id)

    async def drop_after_commit(self, instance_id: str | int) -> None:
        """The next COMMIT sent through this instance's proxy is executed by the server, but the
        client's connection is reset before the reply reaches it: the transaction commits and the
        client cannot know. One-shot; plain-text connections only."""
        async with self._operation() as control:
            await control.drop_after_commit(instance_id)

    async def pause(self, instance_id: str | int, resume_seconds: float = 15.0) -> None:
        """Auto-pause the instance, as Aurora Serverless v2 does at 0 ACUs: its connections are reset
        (a real paused instance has none: it pauses only when idle); new connections are accepted and
        held, the server sending nothing, until ``resume_seconds`` after the first connection attempt
        since the pause; then they log in normally and the instance stays up until paused again. It
        stays in the topology. :meth:`restore` (or a failover that restarts it) ends the pause at once.

        The resume happens inside the fault proxy: :meth:`proxy_status` shows the instance's backend
        ``mode`` (``"paused"`` until it resumed, then ``"up"``) and whether it is ``resuming``;
        :attr:`instances` keeps reporting its network as ``"ok"``."""
        async with self._operation() as control:
            await control.pause(instance_id, resume_seconds)

    async def restore(self, instance_id: str | int) -> None:
        """Undo crash, black hole, latency and pause: the instance runs and is reachable again (a replica that
        crashed before a failover rejoins the new writer)."""
        async with self._operation() as control:
            await control.restore(instance_id)

    async def reboot(self, instance_id: str | int) -> None:
        """Restart the instance's server cleanly: connections are dropped, the role stays."""
        async with self._operation() as control:
            await control.reboot(instance_id)
