"""The listeners an application registers on an :class:`AuroraConnection`: notification (``LISTEN``),
log (``NOTICE``, ``WARNING``, ...) and termination listeners, as asyncpg has them.

Each callback receives the facade it was registered on (as asyncpg passes the connection it was
registered on), never the physical connection below it, which changes at failover. Notification and
log listeners are registered on each physical connection through a relay that swaps in the facade;
after a failover they are registered again on the new one. Termination listeners belong to the facade
itself: they are called once, when the facade is closed (``close()``, ``terminate()``, a failover that
gave up, or, without failover, the loss of its connection), not when a failover replaces the physical
connection.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

Listener = Callable[..., Any]


class Listeners:
    """One facade's listeners, their relays and the termination callbacks' dispatch (the tasks an
    async termination callback runs in belong to it)."""

    def __init__(self, facade: Any, on_raw_end: Callable[[Any], None]) -> None:
        # the relays must not keep an unclosed facade alive: its physical connections hold them
        self._facade = weakref.ref(facade)
        self._on_raw_end = weakref.WeakMethod(on_raw_end)  # (a method of the facade)
        self._loop = asyncio.get_running_loop()
        self.notifications: dict[tuple[str, Listener], Listener] = {}  # (channel, callback) -> relay
        self.logs: dict[Listener, Listener] = {}  # callback -> relay
        self._terminations: dict[Listener, None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended = False

    def relay(self, callback: Listener) -> Listener:
        """A callable for the physical connection that calls ``callback`` with the facade in its
        place (a coroutine function for a coroutine function: asyncpg runs those in a task)."""
        _check_callable(callback)
        facade = self._facade
        if inspect.iscoroutinefunction(callback):

            async def relay_async(_raw: Any, *args: Any) -> None:
                await callback(facade() or _raw, *args)

            return relay_async

        def relay(_raw: Any, *args: Any) -> None:
            callback(facade() or _raw, *args)

        return relay

    def add_log(self, raw: asyncpg.Connection, callback: Listener) -> None:
        if callback not in self.logs:
            self.logs[callback] = self.relay(callback)
            raw.add_log_listener(self.logs[callback])

    def remove_log(self, raw: asyncpg.Connection, callback: Listener) -> None:
        relay = self.logs.pop(callback, None)
        if relay is not None:
            raw.remove_log_listener(relay)

    def add_termination(self, callback: Listener) -> None:
        _check_callable(callback)
        self._terminations[callback] = None

    def remove_termination(self, callback: Listener) -> None:
        self._terminations.pop(callback, None)

    def clear(self) -> None:
        """What asyncpg's ``reset()`` forgets: notification and log listeners."""
        self.notifications.clear()
        self.logs.clear()

    def watch(self, raw: asyncpg.Connection) -> None:
        """Tell the facade when ``raw`` (its physical connection) ends, without ``raw`` holding it."""
        raw.add_termination_listener(self._raw_ended)

    def _raw_ended(self, raw: Any) -> None:
        on_raw_end = self._on_raw_end()
        if on_raw_end is not None:
            on_raw_end(raw)

    async def register_on(self, raw: asyncpg.Connection) -> None:
        """Watch ``raw`` (a new physical connection) and register every notification and log listener
        on it."""
        self.watch(raw)
        for relay in self.logs.values():
            raw.add_log_listener(relay)
        for (channel, _), relay in self.notifications.items():
            await raw.add_listener(channel, relay)

    def ended(self) -> None:
        """The facade is closed: call each termination listener once, with it (soon, on the loop, as
        asyncpg calls them; a coroutine function in a task of its own)."""
        if self._ended:
            return
        self._ended = True
        callbacks, self._terminations = list(self._terminations), {}
        facade = self._facade()
        if facade is None or self._loop.is_closed():
            return
        for callback in callbacks:
            if inspect.iscoroutinefunction(callback):
                self._run(callback(facade))
            else:
                self._loop.call_soon(callback, facade)

    def _run(self, call: Coroutine[Any, Any, Any]) -> None:
        task = self._loop.create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _check_callable(callback: Any) -> None:
    if not callable(callback):
        raise asyncpg.InterfaceError(f"expected a callable or an async function, got {callback!r}")
