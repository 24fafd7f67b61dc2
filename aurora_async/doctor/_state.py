"""The state of one run of the doctor's checks, :class:`Diagnosis`: the checks found so far, what one
check hands on to the next (the configuration, the login connection, the dialect, the instances), the
deadline of each network step, and every secret seen on the way, for the report to mask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from .._auth import Authenticator, Credentials, CredentialSource
from .._config import Config
from .._dialect import Dialect
from .._driver import discard
from .._events import EventHub
from .._exceptions import CredentialsError
from .._registry import registry
from ._report import Check, InstanceReport, Status

T = TypeVar("T")


class _RecordingAuthenticator(Authenticator):
    """The library's authenticator, noting every password it hands out (so the report can mask it)."""

    def __init__(self) -> None:
        super().__init__(default_session=registry.aws_session)  # the process's one AWS session
        self.seen: set[str] = set()

    async def credentials(
        self,
        source: CredentialSource,
        host: str,
        port: int,
        *,
        region: str | None = None,
        stale: Credentials | None = None,
        events: EventHub | None = None,
    ) -> tuple[Credentials, bool]:
        creds, cached = await super().credentials(
            source, host, port, region=region, stale=stale, events=events
        )
        self.seen.add(creds.password)
        return creds, cached


class Diagnosis:
    """One run of the checks (functions that take it, in the ``_*_checks`` modules); ``checks`` grows as
    they run, and ``config``, ``conn`` (the login connection), ``dialect`` and ``instances`` are what the
    earlier checks hand on to the later ones and to the report."""

    def __init__(self, dsn: str | None, options: dict[str, Any], timeout: float) -> None:
        self.dsn = dsn
        self.options = options
        self.timeout = timeout
        self.checks: list[Check] = []
        self.config: Config | None = None
        self.dialect: Dialect | None = None
        self.instances: list[InstanceReport] = []
        self.auth = _RecordingAuthenticator()
        self.conn: Any = None
        self._given_secrets = _given_secrets(dsn, options)

    @property
    def secrets(self) -> set[str]:
        found = set(self._given_secrets) | self.auth.seen
        if self.config is not None and self.config.password:
            found.add(self.config.password)
        return found | {quote(s, safe="") for s in found}

    def add(
        self,
        name: str,
        status: Status,
        summary: str,
        fix: str | None = None,
        details: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        self.checks.append(Check(name, status, summary, fix, {**(details or {}), **more}))

    def errors(self, config: Config) -> tuple[type[BaseException], ...]:
        """What a network step with the driver may raise when the server cannot be used."""
        return (*config.driver.connect_errors, TimeoutError, CredentialsError)

    async def close(self) -> None:
        discard(self.conn)
        self.conn = None
        await self.auth.aclose()

    async def step(self, work: Awaitable[T]) -> T:
        """``work`` within the deadline of one step."""
        async with asyncio.timeout(self.timeout):
            return await work


def _given_secrets(dsn: str | None, options: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    password = options.get("password")
    if isinstance(password, str):
        found.add(password)
    if isinstance(dsn, str):
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return found
        netloc = parts.netloc
        if "@" in netloc:
            userinfo = netloc.rsplit("@", 1)[0]
            if ":" in userinfo:
                raw = userinfo.split(":", 1)[1]
                found.update({raw, unquote(raw)})
    return found
