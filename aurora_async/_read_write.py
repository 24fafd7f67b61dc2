"""Read/write splitting (``read_write_splitting``): moving a session between the writer and a reader.

``set_read_only(True)`` moves the session to a reader chosen by ``reader_host_selector_strategy``;
``False`` back to the writer. The other role's physical connection is kept as the spare and reused on
the next switch while its instance keeps its role. With no reader reachable the session stays on the
writer, read-only in name. Inside a transaction it refuses: the transaction lives on the current
physical connection. On an Aurora Global Database the readers are those of the connection's home region
(``failover_home_region``), as its failover then keeps it (``home_reader_or_writer``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._custom_endpoint import OutsideEndpoint
from ._driver import discard
from ._exceptions import ConfigurationError, ReadWriteSplittingError
from ._failover import FailoverSession
from ._global_failover import spans_regions
from ._identity import LoginRefused
from ._plugins import Plugin
from ._routing import NoInstanceFound, connect_in_role, connect_to_writer, order_readers
from ._topology import Instance, Role

log = logging.getLogger("aurora_async.failover")


class ReadWriteSession(FailoverSession):
    """A failover session that can move between the writer and a reader (see the module docstring)."""

    @property
    def read_only(self) -> bool:
        """Whether the session was moved to a reader with :meth:`set_read_only`."""
        return self._read_only

    async def set_read_only(self, read_only: bool) -> None:
        """Move the session to a reader (``True``) or back to the writer (``False``); needs the
        ``read_write_splitting`` plugin.

        The reader is chosen by ``reader_host_selector_strategy`` (``random``, ``round_robin``,
        ``least_connections``), on an Aurora Global Database among the home region's readers; the
        other role's physical connection is kept and reused on the next switch. With no reader
        reachable the session stays on the writer. Session state set with ``SET`` does not follow
        (each physical connection has its own).

        :raises ReadWriteSplittingError: inside a transaction (it lives on the current connection).
        """
        if not self._config.options.has(Plugin.READ_WRITE_SPLITTING):
            raise ConfigurationError("set_read_only() needs the 'read_write_splitting' plugin")
        if self._closed:
            raise self._closed_error()
        read_only = bool(read_only)
        if read_only == self._read_only:
            return
        if self.is_in_transaction():
            raise ReadWriteSplittingError(
                f"cannot switch to {'a reader' if read_only else 'the writer'} inside a transaction: "
                "commit or roll back first"
            )
        async with self._failover_lock:
            wanted = Role.READER if read_only else Role.WRITER
            if self._instance.role is wanted:  # already there (a read-only session left on the writer)
                self._read_only = read_only
                self._mode = "reader_or_writer" if read_only else self._default_mode
                return
            target = self._reusable_spare(wanted) or await self._open_in_role(wanted)
            if target is None:  # no reader reachable: stay on the writer, read-only in name
                self._read_only = read_only
                log.info("no reader reachable: the read-only session stays on the writer")
                return
            self._untrack()
            self._drop_spare()
            self._spare = (self._raw, self._instance)  # the other role's, kept for the way back
            self._raw, self._instance = target
            self._read_only = read_only
            self._mode = "reader_or_writer" if read_only else self._default_mode
            self._watch()

    def _reusable_spare(self, role: Role) -> tuple[Any, Instance] | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        raw, instance = spare
        topology = self._cluster.topology
        known = topology.get(instance.instance_id) if topology is not None else None
        members = self.custom_endpoint
        if (
            raw.is_closed()
            or known is None
            or (members is not None and not members.allows(known))
            or known.role is not role
            or instance.instance_id in self._cluster.down
        ):
            discard(raw)
            return None
        return raw, known

    async def _open_in_role(self, role: Role) -> tuple[Any, Instance] | None:
        """A physical connection in ``role`` for :meth:`set_read_only` (None: no reader reachable).

        :raises ReadWriteSplittingError: no writer within ``failover_timeout`` (the session stays).
        :raises: the driver's login error when the server refuses this connection's login."""
        loop = asyncio.get_running_loop()
        options = self._config.options
        deadline = loop.time() + options.failover_timeout
        try:
            members = self.custom_endpoint
            if role is Role.WRITER:
                return await connect_to_writer(self._cluster, self._identity, 0.0, deadline, members)
            topology = self._cluster.topology
            home = self._home_region if spans_regions(topology) else None  # a Global Database
            readers = [
                r
                for r in (topology.readers if topology else ())
                if r.instance_id not in self._cluster.down
                and (members is None or members.allows(r))
                and (home is None or r.region == home)
            ]
            for reader in order_readers(readers, self._cluster, options.reader_host_selector_strategy):
                raw = await connect_in_role(
                    self._cluster, self._identity, reader, Role.READER, self._identity.connect_timeout
                )
                if raw is not None:
                    return raw, reader
            return None
        except LoginRefused as refused:
            raise refused.__cause__ or refused from None  # as at connect: the driver's own login error
        except OutsideEndpoint as outside:
            raise ReadWriteSplittingError(f"cannot move to the writer: {outside}") from None
        except NoInstanceFound:
            raise ReadWriteSplittingError(
                f"no writer could be reached within failover_timeout={options.failover_timeout:g} s; "
                "the session stays on its reader"
            ) from None
