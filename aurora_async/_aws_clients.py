"""The credentials cache's AWS service clients: one per (session, service, region, endpoint), kept open.

Each aiobotocore client builds its own HTTP session, and that session a TLS context that loads the CA
bundle: about 20 ms of the event loop on a 2-core machine, plus some 5 ms to make the client. A client
made for each call paid that at every Secrets Manager fetch. These are made once and kept while the
loop has an open cluster; :meth:`AwsClients.aclose` closes them (the credentials cache does when the
loop's last cluster closes).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("aurora_async.auth")

_Key = tuple[int, str, tuple[tuple[str, Any], ...]]


class AwsClients:
    """Open aiobotocore clients, made on first use (see the module docstring)."""

    def __init__(self) -> None:
        # key -> (the session, kept so its id is not reused; the client's context manager; the client)
        self._open: dict[_Key, tuple[Any, Any, Any]] = {}
        self._making = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._open)

    async def client(self, session: Any, service: str, **kwargs: Any) -> Any:
        """The open client of ``session`` for ``service`` with ``kwargs`` (``region_name``,
        ``endpoint_url``), made now if there is none."""
        key: _Key = (id(session), service, tuple(sorted(kwargs.items())))
        found = self._open.get(key)
        if found is not None:
            return found[2]
        async with self._making:  # one client per key, however many fetches start at once
            found = self._open.get(key)
            if found is None:
                context = session.client(service, **kwargs)
                found = self._open[key] = (session, context, await context.__aenter__())
        return found[2]

    async def aclose(self) -> None:
        """Close every client made so far (a later :meth:`client` makes a new one)."""
        clients, self._open = list(self._open.values()), {}
        for _, context, _ in clients:
            try:
                await context.__aexit__(None, None, None)
            except Exception as exc:  # the others are closed all the same
                log.warning("closing an AWS client failed: %s", type(exc).__name__)
