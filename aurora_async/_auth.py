"""The ``iam`` and ``aws_secrets_manager`` plugins: passwords from AWS, cached, fetched single-flight.

An :class:`Authenticator` belongs to a cluster and supplies the user and password of every physical
connection the cluster opens (the application's, and the library's own monitoring and failover
connections). Values are cached until their expiry; concurrent connects that find the cache empty or
expired share one fetch. A login failure with a cached value fetches once more (a token that expired
early, a rotated secret) and retries once; a login failure with a fresh value is the caller's.

aioboto3 is imported only here, and only when one of the plugins is on (the ``aws`` extra). Its
clients live for one call each (``async with session.client(...)``), so nothing is left open when the
cluster closes. Secrets never appear in our logs, reprs or error messages, and a filter keeps them out
of botocore's DEBUG logs too (it logs response bodies and request signatures).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ._concurrency import retrieve_exception
from ._config import Config, iam_region, secret_region
from ._exceptions import IamAuthError, SecretsManagerError

log = logging.getLogger("aurora_async.auth")

T = TypeVar("T")
Clock = Callable[[], float]


class _Cached(Generic[T]):
    """One value with an expiry, fetched by at most one task at a time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
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
            self._fetching = asyncio.ensure_future(self._run(fetch))
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

    def cancel(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()


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


class Authenticator:
    """Supplies credentials for the cluster's connections (see the module docstring)."""

    def __init__(self, config: Config, *, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.options = config.options
        self.stats: Counter[str] = Counter()
        self._clock = clock
        self._session: Any = self.options.aws_session
        self._cache: dict[tuple[Any, ...], _Cached[Credentials]] = {}
        redact_botocore_logs()

    def __repr__(self) -> str:
        kind = "iam" if self.options.has("iam") else "aws_secrets_manager"
        return f"<Authenticator {kind} cached={len(self._cache)}>"

    @staticmethod
    def wanted(config: Config) -> bool:
        return config.options.has("iam") or config.options.has("aws_secrets_manager")

    async def credentials(
        self, host: str, port: int, *, stale: Credentials | None = None
    ) -> tuple[Credentials, bool]:
        """Credentials for a connection to ``host:port``, and whether they came from the cache;
        ``stale``: credentials the server just refused, to be replaced."""
        options = self.options
        if options.has("iam"):
            host, port = options.iam_host or host, options.iam_port or port
            key: tuple[Any, ...] = (
                "iam",
                iam_region(options, self.config.host),
                host,
                port,
                self.config.user,
            )

            def fetch() -> Awaitable[tuple[Credentials, float]]:
                return self._token(key[1], host, port)
        else:
            key = ("secret", options.secrets_manager_secret_id, secret_region(options))

            def fetch() -> Awaitable[tuple[Credentials, float]]:
                return self._secret()

        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = _Cached(self._clock)
        return await cached.get(fetch, stale=stale)

    async def connect(
        self,
        host: str,
        port: int,
        open_with: Callable[[Credentials], Awaitable[T]],
        is_login_error: Callable[[BaseException], bool],
    ) -> T:
        """``open_with(credentials)``; on a login failure with cached credentials, once more with fresh
        ones (an expired token, a rotated secret)."""
        creds, from_cache = await self.credentials(host, port)
        try:
            return await open_with(creds)
        except Exception as exc:
            if not (from_cache and is_login_error(exc)):
                raise
            log.info("login with cached credentials failed (%s): fetching fresh ones", type(exc).__name__)
            self.stats["login_retries"] += 1
        creds, _ = await self.credentials(host, port, stale=creds)
        return await open_with(creds)

    def close(self) -> None:
        for cached in self._cache.values():
            cached.cancel()

    # -- AWS -----------------------------------------------------------------------------------------

    def _aws_session(self) -> Any:
        if self._session is None:
            import aioboto3  # noqa: PLC0415 - the optional 'aws' extra, checked when the config was parsed

            self._session = aioboto3.Session()
        return self._session

    async def _token(self, region: str, host: str, port: int) -> tuple[Credentials, float]:
        user = self.config.user
        self.stats["iam_tokens"] += 1
        try:
            async with self._aws_session().client("rds", region_name=region) as rds:
                token = await rds.generate_db_auth_token(
                    DBHostname=host, Port=port, DBUsername=user, Region=region
                )
        except Exception as exc:  # botocore's NoCredentialsError and friends: name the kind, not the details
            raise IamAuthError(
                f"could not generate an IAM token for {user}@{host}:{port} in {region}: {type(exc).__name__}",
                code=_aws_code(exc),
            ) from None
        log.debug("IAM token generated for %s@%s:%s (%s)", user, host, port, region)
        return Credentials(user, token), self.options.iam_expiration

    async def _secret(self) -> tuple[Credentials, float]:
        options = self.options
        secret_id = options.secrets_manager_secret_id
        self.stats["secret_fetches"] += 1
        kwargs: dict[str, Any] = {"region_name": secret_region(options)}
        if options.secrets_manager_endpoint:
            kwargs["endpoint_url"] = options.secrets_manager_endpoint
        try:
            async with self._aws_session().client("secretsmanager", **kwargs) as client:
                response = await client.get_secret_value(SecretId=secret_id)
        except Exception as exc:
            code = _aws_code(exc)
            raise SecretsManagerError(
                f"could not fetch secret {secret_id!r}: {code or type(exc).__name__}", code=code
            ) from None
        user_key = options.secrets_manager_secret_username_key
        password_key = options.secrets_manager_secret_password_key
        try:
            document = json.loads(response.get("SecretString") or "")
        except ValueError:
            raise SecretsManagerError(f"secret {secret_id!r} is not a JSON object") from None
        if not isinstance(document, dict):
            raise SecretsManagerError(f"secret {secret_id!r} is not a JSON object")
        missing = [k for k in (user_key, password_key) if not isinstance(document.get(k), str)]
        if missing:
            raise SecretsManagerError(
                f"secret {secret_id!r} has no string value for key(s) {', '.join(map(repr, missing))} "
                "(see secrets_manager_secret_username_key / _password_key)"
            )
        log.debug("secret %r fetched", secret_id)
        return Credentials(document[user_key], document[password_key]), options.secrets_manager_expiration


def _aws_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None
