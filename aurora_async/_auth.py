"""The ``iam`` and ``aws_secrets_manager`` plugins: passwords from AWS, cached, fetched single-flight.

A connection whose identity has a credential source (:class:`IamSource`, :class:`SecretSource`) gets
its user and password from the event loop's :class:`Authenticator`, for each physical connection opened
for it (and for the library's own connections that borrow its identity). Values are cached per source
(and per host for IAM tokens) until their expiry; concurrent connects that find the cache empty or
expired share one fetch. A login failure with a cached value fetches once more (a token that expired
early, a rotated secret) and retries once; a login failure with a fresh value is the caller's.

aioboto3 is imported only when one of the plugins is on (the ``aws`` extra). The process shares one
aioboto3 session (unless a connection brings its own, ``aws_session=``), so its credentials resolve
and its service models load once. IAM tokens are signed from the session's credentials (``_iam_token``:
no RDS client). Secrets Manager clients are kept open (``_aws_clients``: one per session, region and
endpoint) while a cluster of the loop is open, and closed with the last one.
Secrets never appear in our logs, reprs or error messages, and a filter keeps them out of botocore's
DEBUG logs too (it logs response bodies and request signatures).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._aws_clients import AwsClients
from ._concurrency import TaskOwner, retrieve_exception
from ._events import EventHub, IamTokenGenerated, SecretFetched
from ._exceptions import IamAuthError, SecretsManagerError
from ._iam_token import generate_token

log = logging.getLogger("aurora_async.auth")

T = TypeVar("T")
Clock = Callable[[], float]


class _Cached(Generic[T]):
    """One value with an expiry, fetched by at most one task at a time (a task of ``tasks``, so that
    callers that give up do not cancel the fetch the others wait for)."""

    def __init__(self, clock: Clock, tasks: TaskOwner) -> None:
        self._clock = clock
        self._tasks = tasks
        self._value: T | None = None
        self._expires = 0.0
        self._fetching: asyncio.Future[T] | None = None

    def fresh(self) -> T | None:
        return self._value if self._value is not None and self._clock() < self._expires else None

    async def get(
        self, fetch: Callable[[], Awaitable[tuple[T, float]]], *, stale: T | None = None
    ) -> tuple[T, bool]:
        """The value and whether it came from the cache; ``fetch`` returns (value, lifetime).

        ``stale``: a value that just failed; fetch a new one unless another task already replaced it
        (so that N connections failing with the same expired token cause one fetch, not N)."""
        value = self.fresh()
        if value is not None and value is not stale:
            return value, stale is None
        if self._fetching is None or self._fetching.done():
            self._fetching = self._tasks.spawn(self._run(fetch), name="aurora_async credentials fetch")
            self._fetching.add_done_callback(retrieve_exception)
        fetching = self._fetching
        try:
            return await asyncio.shield(fetching), False
        finally:
            if fetching.done() and self._fetching is fetching:
                self._fetching = None

    async def _run(self, fetch: Callable[[], Awaitable[tuple[T, float]]]) -> T:
        value, lifetime = await fetch()
        self._value, self._expires = value, self._clock() + lifetime
        return value

    def expired(self) -> bool:
        return self.fresh() is None and (self._fetching is None or self._fetching.done())


class _RedactSecrets(logging.Filter):
    """botocore logs every response body and every request signature at DEBUG: a secret's value, and
    the signature that completes an IAM token. This filter blanks those two kinds of record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not isinstance(msg, str):
            return True
        secret_body = msg.startswith("Response body") and "SecretString" in record.getMessage()
        if secret_body or msg.startswith("Signature:"):
            record.msg, record.args = f"{msg.split(':', 1)[0]}: <redacted by aurora_async>", ()
        return True


def redact_botocore_logs() -> None:
    """Install :class:`_RedactSecrets` on botocore's loggers (once; the plugins call it)."""
    for name in ("botocore.parsers", "botocore.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
            logger.addFilter(_RedactSecrets())


class Credentials:
    """A user and a password; the password never shows in a repr."""

    __slots__ = ("password", "user")

    def __init__(self, user: str | None, password: str) -> None:
        self.user = user
        self.password = password

    def __repr__(self) -> str:
        return f"<Credentials user={self.user!r} password=***>"


@dataclass(frozen=True)
class IamSource:
    """Passwords are IAM tokens for ``user``, signed for ``region``; ``host`` / ``port`` (``iam_host``,
    ``iam_port``) replace the address connected to in the token when set. ``allow_plaintext``
    (``iam_allow_plaintext``): the caller accepts tokens sent without TLS."""

    user: str
    region: str
    host: str | None
    port: int | None
    expiration: float
    aws_session: Any = field(default=None, repr=False)  # compared by identity: whose AWS principal
    allow_plaintext: bool = False

    kind = "iam"

    def key(self, host: str, port: int, region: str | None = None) -> tuple[Any, ...]:
        """What one cached token is for: signed for ``region`` (the instance's, where the topology
        gives it), else for :attr:`region`."""
        where = region or self.region
        return ("iam", where, self.host or host, self.port or port, self.user, self.aws_session)


@dataclass(frozen=True)
class SecretSource:
    """User and password are read from a Secrets Manager JSON secret."""

    secret_id: str
    region: str
    endpoint: str | None
    username_key: str
    password_key: str
    expiration: float
    aws_session: Any = field(default=None, repr=False)

    kind = "aws_secrets_manager"

    def key(self, host: str, port: int, region: str | None = None) -> tuple[Any, ...]:
        return ("secret", self.secret_id, self.region, self.endpoint, self.aws_session)


CredentialSource = IamSource | SecretSource


class Authenticator:
    """Supplies the credentials of every source, cached (see the module docstring). One serves every
    cluster of an event loop, so connect-close-connect reuses a token or secret until it expires."""

    def __init__(self, *, default_session: Callable[[], Any], clock: Clock = time.monotonic) -> None:
        self.stats: Counter[str] = Counter()
        self._clock = clock
        self._default_session = default_session
        self._cache: dict[tuple[Any, ...], _Cached[Credentials]] = {}
        self._tasks = TaskOwner()  # the fetches in flight, and the closing of the clients
        self._clients = AwsClients()  # open while a cluster uses this cache (``attach``)
        self._users = 0
        self._closing: asyncio.Task[None] | None = None
        redact_botocore_logs()

    def __repr__(self) -> str:
        return f"<Authenticator cached={len(self._cache)}>"

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
        """Credentials for a connection to ``host:port``, and whether they came from the cache;
        ``region``: the instance's own AWS region where known (an IAM token is signed for it rather
        than for the source's region: an Aurora Global Database's instances are in several);
        ``stale``: credentials the server just refused, to be replaced; ``events``: where a fetch this
        call starts is told (the cluster of the connection that asked)."""
        key = source.key(host, port, region)
        cached = self._cache.get(key)
        if cached is None:
            self._prune()
            cached = self._cache[key] = _Cached(self._clock, self._tasks)
        if isinstance(source, IamSource):
            token_host, token_port = source.host or host, source.port or port
            signed_for = region or source.region

            async def fetch() -> tuple[Credentials, float]:
                fetched = await self._token(source, token_host, token_port, signed_for)
                if events is not None:
                    events.emit(
                        IamTokenGenerated,
                        user=source.user,
                        host=token_host,
                        port=token_port,
                        region=signed_for,
                    )
                return fetched
        else:

            async def fetch() -> tuple[Credentials, float]:
                fetched = await self._secret(source)
                if events is not None:
                    events.emit(SecretFetched, secret_id=source.secret_id)
                return fetched

        return await cached.get(fetch, stale=stale)

    async def connect(
        self,
        source: CredentialSource,
        host: str,
        port: int,
        open_with: Callable[[Credentials], Awaitable[T]],
        is_login_error: Callable[[BaseException], bool],
        *,
        region: str | None = None,
        events: EventHub | None = None,
    ) -> T:
        """``open_with(credentials)``; on a login failure with cached credentials, once more with fresh
        ones (an expired token, a rotated secret). ``region``: as :meth:`credentials`. Fetches are told
        to ``events``."""
        creds, from_cache = await self.credentials(source, host, port, region=region, events=events)
        try:
            return await open_with(creds)
        except Exception as exc:
            if not (from_cache and is_login_error(exc)):
                raise
            log.info("login with cached credentials failed (%s): fetching fresh ones", type(exc).__name__)
            self.stats["login_retries"] += 1
        creds, _ = await self.credentials(source, host, port, region=region, stale=creds, events=events)
        return await open_with(creds)

    def _prune(self) -> None:
        """Forget expired entries nobody is fetching (hosts come and go over a process's life)."""
        if len(self._cache) >= 64:
            for key in [k for k, c in self._cache.items() if c.expired()]:
                del self._cache[key]

    def attach(self) -> None:
        """A cluster uses this cache: its AWS clients stay open until every such cluster detached."""
        self._users += 1

    def detach(self) -> None:
        """A cluster that attached is done; with the last one, the AWS clients are closed (a task of
        this cache: :meth:`idle` waits for it)."""
        self._users -= 1
        if self._users == 0 and len(self._clients) and not self._tasks.closed:
            self._closing = self._tasks.spawn(self._clients.aclose(), name="aurora_async: close AWS clients")

    async def idle(self) -> None:
        """Wait until the clients that :meth:`detach` closes are closed."""
        closing = self._closing
        if closing is not None and not closing.done():
            await asyncio.wait({closing})  # not its outcome: the closing logs its own failures

    def close(self) -> None:
        """Stop the fetches in flight and forget every cached value; fetch no more (:meth:`aclose`
        also closes the AWS clients)."""
        self._tasks.cancel()
        self._cache.clear()

    async def aclose(self) -> None:
        """:meth:`close`, wait for the fetches to end, and close the AWS clients."""
        self.close()
        await self._tasks.aclose()
        await self._clients.aclose()

    # -- AWS -----------------------------------------------------------------------------------------

    def _session(self, source: CredentialSource) -> Any:
        return source.aws_session if source.aws_session is not None else self._default_session()

    async def _token(self, source: IamSource, host: str, port: int, region: str) -> tuple[Credentials, float]:
        user = source.user
        self.stats["iam_tokens"] += 1
        failure: Exception | None = None
        try:
            token = await generate_token(self._session(source), host, port, user, region)
        except Exception as exc:  # botocore's NoCredentialsError and friends: name the kind, not the details
            failure = exc
        if failure is not None:
            raise IamAuthError(
                f"could not generate an IAM token for {user}@{host}:{port} in {region}: "
                f"{type(failure).__name__}",
                code=_aws_code(failure),
            )
        log.debug("IAM token generated for %s@%s:%s (%s)", user, host, port, region)
        return Credentials(user, token), source.expiration

    async def _secret(self, source: SecretSource) -> tuple[Credentials, float]:
        secret_id = source.secret_id
        self.stats["secret_fetches"] += 1
        kwargs: dict[str, Any] = {"region_name": source.region}
        if source.endpoint:
            kwargs["endpoint_url"] = source.endpoint
        failure: Exception | None = None
        try:
            client = await self._clients.client(self._session(source), "secretsmanager", **kwargs)
            response = await client.get_secret_value(SecretId=secret_id)
        except Exception as exc:
            failure = exc
        if failure is not None:
            code = _aws_code(failure)
            raise SecretsManagerError(
                f"could not fetch secret {secret_id!r}: {code or type(failure).__name__}", code=code
            )
        # raised outside any except block: a JSONDecodeError's .doc is the whole secret, and it must not
        # ride along as __context__
        document = _json_object(response.get("SecretString"))
        if document is None:
            raise SecretsManagerError(f"secret {secret_id!r} is not a JSON object")
        user_key, password_key = source.username_key, source.password_key
        missing = [k for k in (user_key, password_key) if not isinstance(document.get(k), str)]
        if missing:
            raise SecretsManagerError(
                f"secret {secret_id!r} has no string value for key(s) {', '.join(map(repr, missing))} "
                "(see secrets_manager_secret_username_key / _password_key)"
            )
        log.debug("secret %r fetched", secret_id)
        return Credentials(document[user_key], document[password_key]), source.expiration


class ClusterCredentials:
    """The event loop's :class:`Authenticator` as one cluster's connections use it (``Driver.open``'s
    ``auth``): the fetches they start are told to the cluster's events (when it has them), and an IAM
    token for an instance whose region the cluster's topology gives (``region_of``: an Aurora Global
    Database) is signed for that region."""

    def __init__(
        self,
        auth: Authenticator,
        events: EventHub | None = None,
        region_of: Callable[[str, int, str | None], str | None] | None = None,
    ) -> None:
        self.auth = auth
        self.events = events
        self.region_of = region_of

    def __repr__(self) -> str:
        return f"<ClusterCredentials {self.events.cluster if self.events is not None else '-'}>"

    async def connect(
        self,
        source: CredentialSource,
        host: str,
        port: int,
        open_with: Callable[[Credentials], Awaitable[T]],
        is_login_error: Callable[[BaseException], bool],
    ) -> T:
        named = source.host if isinstance(source, IamSource) else None
        region = self.region_of(host, port, named) if self.region_of is not None else None
        return await self.auth.connect(
            source, host, port, open_with, is_login_error, region=region, events=self.events
        )


def _json_object(text: Any) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, else None; no exception escapes, so none can carry the text."""
    if not isinstance(text, str):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    return document if isinstance(document, dict) else None


def _aws_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None
