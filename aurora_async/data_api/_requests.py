"""Sending one Data API request: error mapping, and the retries that cannot duplicate work.

botocore's own retries are off (they would re-send a write after a read timeout or a 5xx, which can run
it twice). Instead a request is sent again, with exponential backoff and jitter, until ``retry_timeout``:

- when the Data API says it did not run it: ``DatabaseResumingException`` (an auto-paused cluster
  waking up), "Communications link failure", or no connection to the endpoint at all;
- after a 5xx or a lost/timed-out response only if the caller says repeating it is harmless (a read
  outside a transaction); otherwise :class:`RequestOutcomeUnknownError`.

Requests inside a transaction are never re-sent for a resuming cluster either: its transaction is gone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from ._errors import (
    DataApiError,
    DatabaseResumingError,
    RequestOutcomeUnknownError,
    from_client_error,
    is_resuming,
)

log = logging.getLogger("aurora_async.data_api")


class Backoff:
    """Delays of an exponential backoff with "equal jitter": attempt n waits between half of and the
    whole of ``min(max_delay, initial * 2**n)``."""

    def __init__(self, initial: float, max_delay: float, rng: random.Random) -> None:
        self.initial, self.max_delay, self._rng = initial, max_delay, rng

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.initial * 2 ** min(attempt, 32))
        return self._rng.uniform(ceiling / 2, ceiling)


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
        while True:
            try:
                response: dict[str, Any] = await getattr(self.client, operation)(**request)
                return response
            except Exception as exc:
                error, again = self._classify(exc, repeatable=repeatable, resumable=resumable)
            delay = self.backoff.delay(attempt)
            if not again or self._clock() + delay > deadline:
                if again:
                    raise self._gave_up(error, attempt + 1) from error.__cause__
                raise error from error.__cause__
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
        from botocore.exceptions import (  # noqa: PLC0415 - the optional 'aws' extra
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
        )

        if isinstance(exc, ClientError):
            error = from_client_error(exc)
            error.__cause__ = exc
            if is_resuming(error):
                return error, resumable
            if (error.status or 0) >= 500:
                return self._unknown(error, exc), repeatable
            return error, False
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            error = DataApiError(f"cannot reach the Data API endpoint: {exc}", code=type(exc).__name__)
            error.__cause__ = exc
            return error, True  # nothing was sent
        if isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError):
            error = DataApiError(f"no answer from the Data API: {exc}", code=type(exc).__name__)
            return self._unknown(error, exc), repeatable
        raise exc

    @staticmethod
    def _unknown(error: DataApiError, exc: BaseException) -> DataApiError:
        unknown = RequestOutcomeUnknownError(
            f"{error.message} - the statement may or may not have run; it was not sent again",
            code=error.code,
            status=error.status,
        )
        unknown.__cause__ = exc
        return unknown

    def _gave_up(self, error: DataApiError, attempts: int) -> DataApiError:
        if is_resuming(error):
            gave_up: DataApiError = DatabaseResumingError(
                f"the database was still resuming after {attempts} attempts in {self.retry_timeout:g} s "
                f"(retry_timeout): {error.message}",
                code=error.code,
                status=error.status,
            )
            gave_up.__cause__ = error.__cause__
            return gave_up
        return error
