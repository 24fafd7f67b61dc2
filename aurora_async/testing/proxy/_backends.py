"""The fault proxy's routing table: backends (one database server each, with its fault mode, delay and
armed fault) and listeners (addresses that route new connections to their target backends)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._link import Link
    from ._tls_relay import TlsFiles

Mode = Literal["up", "down", "blackhole", "paused"]
MODES: tuple[Mode, ...] = ("up", "down", "blackhole", "paused")
Fault = Literal["drop_after_commit"]
FAULTS: tuple[Fault, ...] = ("drop_after_commit",)
WireProtocol = Literal["postgresql", "mysql"]
PROTOCOLS: tuple[WireProtocol, ...] = ("postgresql", "mysql")


class Backend:
    """One database server and the faults applied to every link routed to it."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        protocol: WireProtocol = "postgresql",
        aurora_mysql: bool = False,
        *,
        tls: TlsFiles | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.protocol = protocol
        self.aurora_mysql = aurora_mysql
        self.tls = tls  # MySQL: the proxy ends the clients' TLS and begins its own to the server
        self.mode: Mode = "up"
        self.delay = 0.0
        self.armed: Fault | None = None  # a one-shot fault, disarmed by the link it catches
        self.links: set[Link] = set()
        # mode "paused": seconds from the first connection attempt until the backend resumes, and the
        # timer that resumes it (None until a connection attempt wakes it)
        self.resume_seconds = 0.0
        self.resume_timer: asyncio.TimerHandle | None = None

    def cancel_resume(self) -> None:
        if self.resume_timer is not None:
            self.resume_timer.cancel()
            self.resume_timer = None

    @property
    def flowing(self) -> bool:
        return self.mode == "up"


class Listener:
    """An address clients connect to, and the backends it routes new connections to."""

    def __init__(self, name: str, host: str, port: int, targets: list[str]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.targets = targets
        self.server: asyncio.Server | None = None
        self.next_index = 0
        self.pending: tuple[float, list[str]] | None = None
        self.pending_timer: asyncio.TimerHandle | None = None
        self.accepted = 0
