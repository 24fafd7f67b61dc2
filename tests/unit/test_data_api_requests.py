"""Which failed Data API requests are sent again, without sockets: the exceptions are built as
aiobotocore builds them (``aiobotocore/httpsession.py``: each aiohttp exception becomes a botocore one,
with the aiohttp exception as its ``error``). Only a request that provably never left the client (the
TCP connection was never established) or that the Data API says it did not run is sent again, unless
the caller said repeating it is harmless. The same faults on real sockets: tests/integration/
test_data_api_resend.py."""

from __future__ import annotations

import random
import socket
import ssl
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from aurora_async._concurrency import Backoff
from aurora_async.data_api import DataApiError, DatabaseResumingError, RequestOutcomeUnknownError
from aurora_async.data_api._requests import Requester

URL = "https://rds-data.us-east-1.amazonaws.com/Execute"
KEY = ConnectionKey("rds-data.us-east-1.amazonaws.com", 443, True, True, None, None, None)


def refused() -> Exception:
    error = aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused"))
    return cast(Exception, EndpointConnectionError(endpoint_url=URL, error=error))


def no_such_host() -> Exception:
    error = aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known"))
    return cast(Exception, EndpointConnectionError(endpoint_url=URL, error=error))


def raw_dns_failure() -> Exception:
    return cast(
        Exception,
        EndpointConnectionError(endpoint_url=URL, error=socket.gaierror(-2, "Name or service not known")),
    )


def connect_timeout() -> Exception:
    error = aiohttp.ConnectionTimeoutError(f"Connection timeout to host {URL}")
    return cast(Exception, ConnectTimeoutError(endpoint_url=URL, error=error))


def proxy_refused() -> Exception:
    error = aiohttp.ClientProxyConnectionError(KEY, ConnectionRefusedError(111, "Connection refused"))
    return cast(Exception, ProxyConnectionError(proxy_url="http://proxy:3128", error=error))


def tls_handshake_cut() -> Exception:
    error = aiohttp.ClientConnectorSSLError(KEY, ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    return cast(Exception, SSLError(endpoint_url=URL, error=error))


def reset_after_sending() -> Exception:
    # a reset while waiting for the answer: aiohttp's ClientOSError, which aiobotocore maps to the same
    # EndpointConnectionError as a refused connection
    error = aiohttp.ClientOSError(104, "Connection reset by peer")
    return cast(Exception, EndpointConnectionError(endpoint_url=URL, error=error))


def closed_after_sending() -> Exception:
    error = aiohttp.ServerDisconnectedError("Server disconnected")
    return cast(Exception, ConnectionClosedError(endpoint_url=URL, error=error, request=None))


def cut_answer() -> Exception:
    error = aiohttp.ClientPayloadError("Response payload is not completed")
    return cast(Exception, ConnectionClosedError(endpoint_url=URL, error=error, request=None))


def read_timeout() -> Exception:
    error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
    return cast(Exception, ReadTimeoutError(endpoint_url=URL, error=error))


def plain_timeout() -> Exception:
    return cast(Exception, ReadTimeoutError(endpoint_url=URL, error=TimeoutError()))


def other_client_error() -> Exception:
    return cast(Exception, HTTPClientError(error=RuntimeError("something in the HTTP client")))


def aws_error(code: str, status: int, message: str = "m") -> Exception:
    return cast(
        Exception,
        ClientError(
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "ExecuteStatement",
        ),
    )


NEVER_SENT = [refused, no_such_host, raw_dns_failure, connect_timeout, proxy_refused, tls_handshake_cut]
MAYBE_RUN = [
    reset_after_sending,
    closed_after_sending,
    cut_answer,
    read_timeout,
    plain_timeout,
    other_client_error,
    lambda: aws_error("InternalServerErrorException", 500),
    lambda: aws_error("ServiceUnavailableError", 503),
    lambda: aws_error("DatabaseUnavailableException", 504),
]


class FakeClient:
    """An ``rds-data`` client whose first calls raise the given exceptions."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def execute_statement(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"numberOfRecordsUpdated": 1}


def requester(client: FakeClient, retry_timeout: float = 30.0) -> Requester:
    return Requester(client, retry_timeout=retry_timeout, backoff=Backoff(0.001, 0.002, rng=random.Random(1)))


async def send(client: FakeClient, *, repeatable: bool = False, resumable: bool = True) -> dict[str, Any]:
    return await requester(client).send(
        "execute_statement", {"sql": "INSERT ..."}, repeatable=repeatable, resumable=resumable
    )


@pytest.mark.parametrize("error", NEVER_SENT)
@pytest.mark.parametrize("resumable", [True, False])
async def test_a_request_that_never_left_is_sent_again(error: Any, resumable: bool) -> None:
    client = FakeClient(error(), error())
    assert await send(client, repeatable=False, resumable=resumable) == {"numberOfRecordsUpdated": 1}
    assert client.calls == 3


@pytest.mark.parametrize("error", MAYBE_RUN)
async def test_a_request_that_may_have_run_is_not_sent_again(error: Any) -> None:
    client = FakeClient(error())
    with pytest.raises(RequestOutcomeUnknownError, match="may or may not have run") as info:
        await send(client, repeatable=False)
    assert client.calls == 1
    assert "not sent again" in info.value.message
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("error", MAYBE_RUN)
async def test_a_repeatable_request_is_sent_again_after_any_fault(error: Any) -> None:
    client = FakeClient(error(), error())
    assert await send(client, repeatable=True) == {"numberOfRecordsUpdated": 1}
    assert client.calls == 3


async def test_a_certificate_error_is_raised_at_once() -> None:
    cause = aiohttp.ClientConnectorCertificateError(KEY, ssl.CertificateError("hostname mismatch"))
    client = FakeClient(SSLError(endpoint_url=URL, error=cause))
    with pytest.raises(DataApiError, match="nothing was sent") as info:
        await send(client, repeatable=True)
    assert not isinstance(info.value, RequestOutcomeUnknownError)
    assert client.calls == 1


async def test_giving_up_on_a_never_sent_request_says_so() -> None:
    client = FakeClient(*(refused() for _ in range(1000)))
    with pytest.raises(DataApiError) as info:
        await requester(client, retry_timeout=0.05).send("execute_statement", {}, repeatable=False)
    error = info.value
    assert not isinstance(error, RequestOutcomeUnknownError)
    assert error.code == "EndpointConnectionError"
    assert f"{client.calls} attempts in 0.05 s (retry_timeout)" in error.message
    assert "nothing was sent" in error.message
    assert 2 <= client.calls < 1000


async def test_giving_up_on_a_repeatable_request_counts_the_attempts() -> None:
    client = FakeClient(*(reset_after_sending() for _ in range(1000)))
    with pytest.raises(RequestOutcomeUnknownError, match="may or may not have run") as info:
        await requester(client, retry_timeout=0.05).send("execute_statement", {}, repeatable=True)
    assert f"{client.calls} attempts in 0.05 s (retry_timeout)" in info.value.message


async def test_giving_up_after_an_attempt_that_may_have_run_is_an_unknown_outcome() -> None:
    client = FakeClient(reset_after_sending(), *(refused() for _ in range(1000)))
    with pytest.raises(RequestOutcomeUnknownError, match="an earlier attempt got no answer") as info:
        await requester(client, retry_timeout=0.05).send("execute_statement", {}, repeatable=True)
    assert "may or may not have run" in info.value.message
    assert info.value.code == "EndpointConnectionError"


async def test_retry_timeout_zero_sends_once() -> None:
    client = FakeClient(refused(), refused())
    with pytest.raises(DataApiError, match=r"after 1 attempt in 0 s \(retry_timeout\), so nothing was sent"):
        await requester(client, retry_timeout=0).send("execute_statement", {}, repeatable=True)
    assert client.calls == 1


async def test_a_resuming_cluster_is_waited_for_outside_a_transaction_only() -> None:
    resuming = aws_error("DatabaseResumingException", 400, "resuming after being auto-paused")
    client = FakeClient(resuming)
    assert await send(client) == {"numberOfRecordsUpdated": 1}
    assert client.calls == 2
    client = FakeClient(resuming)
    with pytest.raises(DatabaseResumingError):
        await send(client, resumable=False)
    assert client.calls == 1


async def test_other_aws_errors_are_raised_at_once() -> None:
    client = FakeClient(aws_error("BadRequestException", 400, "syntax"))
    with pytest.raises(DataApiError) as info:
        await send(client, repeatable=True)
    assert not isinstance(info.value, RequestOutcomeUnknownError)
    assert client.calls == 1
