"""Sending one Data API request: error mapping, and the only re-sends that cannot duplicate work.

botocore's own retries are off (they would re-send a write after a read timeout or a 5xx, which can run
it twice). A request is sent again, with exponential backoff and jitter, until ``retry_timeout`` only:

- when it provably never left the client: the TCP (or TLS) connection to the endpoint was never
  established (connection refused, no such host, connect timeout). aiobotocore turns aiohttp's
  ``ClientConnectorError`` into ``EndpointConnectionError``, but also a reset after the request was
  written (aiohttp's ``ClientOSError``), so the decision is made on the aiohttp exception underneath;
- when the Data API answers that it ran nothing: ``DatabaseResumingException`` (an auto-paused cluster
  waking up) or "Communications link failure", outside a transaction (inside one, the transaction is
  gone);
- after any other failure (a reset or a close after sending, a read timeout, a 5xx: the statement may
  have run) only when the caller said running it twice is harmless (``repeatable``: ``idempotent=True``,
  or ``resend_reads=True`` for a SELECT-like statement, outside a transaction). Otherwise
  :class:`RequestOutcomeUnknownError` at once.

A certificate error is raised at once: nothing was sent, and sending again would not help.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from .._concurrency import Backoff
from ._errors import (
    DataApiError,
    DatabaseResumingError,
    RequestOutcomeUnknownError,
    from_client_error,
    is_resuming,
)

log = logging.getLogger("aurora_async.data_api")


class Requester:
    """Sends requests through an aiobotocore ``rds-data`` client (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        *,
        retry_timeout: float,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.retry_timeout = retry_timeout
        self.backoff = backoff
        self._clock = clock
        self.retries = 0  # requests sent again, over the connection's life

    async def send(
        self, operation: str, request: dict[str, Any], *, repeatable: bool, resumable: bool = True
    ) -> dict[str, Any]:
        """``client.<operation>(**request)``'s response. ``repeatable``: running it twice is harmless;
        ``resumable``: re-send it while the cluster resumes (False inside a transaction)."""
        deadline = self._clock() + self.retry_timeout
        attempt = 0
        reached = False  # an earlier attempt may have run
        while True:
            try:
                response: dict[str, Any] = await getattr(self.client, operation)(**request)
                return response
            except Exception as exc:
                error, again = self._classify(exc, repeatable=repeatable, resumable=resumable)
            delay = self.backoff.delay(attempt)
            if not again or self._clock() + delay > deadline:
                raise self._gave_up(error, attempt + 1, again, reached) from error.__cause__
            reached = reached or isinstance(error, RequestOutcomeUnknownError)
            attempt += 1
            self.retries += 1
            log.info(
                "Data API %s: %s (%s); sending it again in %.2f s (attempt %d)",
                operation,
                error.code,
                type(error).__name__,
                delay,
                attempt + 1,
            )
            await asyncio.sleep(delay)

    def _classify(self, exc: Exception, *, repeatable: bool, resumable: bool) -> tuple[DataApiError, bool]:
        """The error to raise, and whether sending the request again is allowed."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - the 'aws' extra

        if isinstance(exc, ClientError):
            error = from_client_error(exc)
            error.__cause__ = exc
            if is_resuming(error):
                return error, resumable
            if (error.status or 0) >= 500:
                return self._unknown(error, exc), repeatable
            return error, False
        if isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError):
            code = type(exc).__name__
            sent = _whether_sent(exc)
            if sent == "never":
                error = DataApiError(
                    f"could not connect to the Data API endpoint, so nothing was sent: {exc}", code=code
                )
                error.__cause__ = exc
                return error, True
            if sent == "refused":
                error = DataApiError(
                    f"the Data API endpoint's TLS certificate was refused, so nothing was sent: {exc}",
                    code=code,
                )
                error.__cause__ = exc
                return error, False
            error = DataApiError(f"no answer from the Data API: {exc}", code=code)
            return self._unknown(error, exc), repeatable
        raise exc

    @staticmethod
    def _unknown(error: DataApiError, exc: BaseException) -> DataApiError:
        unknown = RequestOutcomeUnknownError(
            f"{error.message} - the statement may or may not have run",
            code=error.code,
            status=error.status,
        )
        unknown.__cause__ = exc
        return unknown

    def _gave_up(self, error: DataApiError, attempts: int, again: bool, reached: bool) -> DataApiError:
        """The error to raise when the request is not sent again (``again``: it was allowed, but
        ``retry_timeout`` ran out; ``reached``: an earlier attempt may have run)."""
        after = (
            f"{attempts} attempt{'s' if attempts != 1 else ''} in {self.retry_timeout:g} s (retry_timeout)"
        )
        gave_up: DataApiError
        if isinstance(error, RequestOutcomeUnknownError):
            how = f"; {after}" if again else "; it was not sent again"
            gave_up = RequestOutcomeUnknownError(error.message + how, code=error.code, status=error.status)
        elif not again:
            return error
        elif is_resuming(error):
            gave_up = DatabaseResumingError(
                f"the database was still resuming after {after}: {error.message}",
                code=error.code,
                status=error.status,
            )
        else:
            gave_up = DataApiError(
                f"could not connect to the Data API endpoint after {after}, so nothing was sent: "
                f"{error.__cause__}",
                code=error.code,
                status=error.status,
            )
        if reached and not isinstance(gave_up, RequestOutcomeUnknownError):
            gave_up = RequestOutcomeUnknownError(
                f"{gave_up.message} - but an earlier attempt got no answer: the statement may or may not "
                "have run",
                code=error.code,
                status=error.status,
            )
        gave_up.__cause__ = error.__cause__
        return gave_up


def _whether_sent(exc: BaseException) -> str:
    """``"never"`` when the request provably never left this process (the connection to the endpoint or
    its proxy was never established), ``"refused"`` when the TLS certificate was refused (never sent
    either, but sending again will not help), else ``"maybe"``.

    aiobotocore keeps the aiohttp exception as the botocore exception's ``error``. aiohttp raises
    ``ClientConnectorError`` (refused, unreachable, DNS: ``ClientConnectorDNSError``, a proxy, a TLS
    handshake) and ``ConnectionTimeoutError`` only while it opens a connection, before a byte of the
    request is written; everything after that is ``ClientOSError`` (a reset), ``ServerDisconnectedError``,
    ``ClientPayloadError``, ``SocketTimeoutError`` ... Anything unrecognised counts as maybe sent."""
    import aiohttp  # noqa: PLC0415 - comes with aiobotocore

    cause = getattr(exc, "kwargs", {}).get("error", exc)
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return "refused"
    if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | socket.gaierror):
        return "never"
    return "maybe"
