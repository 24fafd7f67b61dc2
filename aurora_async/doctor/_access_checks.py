"""The checks of getting in: the credentials (an IAM token, a Secrets Manager secret), the login with
them, and TLS (what was negotiated, whether the certificate was verified, what the server offers and
accepts, asked without a password). Each failure's fix names the likely cause for that kind of login."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from .._auth import CredentialSource, IamSource, SecretSource
from .._config import Config
from .._exceptions import CredentialsError
from .._local_socket import is_local_socket
from .._tls import Tls
from ._probes import ServerTls, mysql_server_tls, negotiated_tls, pg_server_tls
from ._report import Status
from ._state import Diagnosis
from ._text import connect_failure

_VERIFY_FIXES = {
    "postgresql": "verify the server: ?sslmode=verify-full&sslrootcert=global-bundle.pem in the DSN (the "
    "RDS CA bundle), or ssl=ssl.create_default_context(cafile='global-bundle.pem')",
    "mysql": "verify the server: ssl=ssl.create_default_context(cafile='global-bundle.pem') (the RDS CA "
    "bundle; --ssl-ca on the command line)",
}


async def check_credentials(diagnosis: Diagnosis, config: Config) -> bool:
    source = config.identity.credentials
    if source is None:
        return True
    try:
        creds, _ = await diagnosis.step(diagnosis.auth.credentials(source, config.host, config.port))
    except TimeoutError:
        diagnosis.add(
            "credentials",
            Status.FAIL,
            f"{_source_text(source)}: no answer from AWS within {diagnosis.timeout:g} s",
            "check that this machine reaches the AWS endpoint (a VPC endpoint, or NAT from a private subnet)",
        )
        return False
    except CredentialsError as exc:
        if isinstance(source, IamSource):
            fix = (
                "give this process AWS credentials (AWS_PROFILE, the environment, an instance or task "
                "role) allowed rds-db:connect for the database user"
            )
        else:
            fix = (
                "check secrets_manager_secret_id and its region, and that these AWS credentials may "
                "secretsmanager:GetSecretValue on it"
            )
        diagnosis.add("credentials", Status.FAIL, f"{_source_text(source)}: {exc}", fix)
        return False
    if isinstance(source, IamSource):
        token_host = source.host or config.host
        token_port = source.port or config.port
        summary = (
            f"IAM token generated for {source.user}@{token_host}:{token_port} in {source.region} "
            f"({len(creds.password)} characters, not shown)"
        )
    else:
        summary = (
            f"secret {source.secret_id!r} fetched ({source.region}): user {creds.user!r}, password not shown"
        )
    diagnosis.add("credentials", Status.OK, summary, kind=source.kind)
    return True


async def check_login(diagnosis: Diagnosis, config: Config) -> Any:
    identity, driver = config.identity, config.driver
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        conn = await diagnosis.step(
            driver.open(identity, config.host, config.port, diagnosis.timeout, diagnosis.auth)
        )
    except diagnosis.errors(config) as exc:
        diagnosis.add(
            "login", Status.FAIL, connect_failure(config, exc, diagnosis.timeout), _login_fix(config, exc)
        )
        return None
    took = (loop.time() - started) * 1000
    diagnosis.add(
        "login",
        Status.OK,
        f"logged in as {_login_user(config)} at {config.host}:{config.port} in {took:.0f} ms; "
        f"server {_server_version(config.engine, conn)}",
        connect_ms=round(took, 1),
    )
    return conn


async def check_tls(diagnosis: Diagnosis, config: Config, conn: Any) -> None:
    if is_local_socket(config.host):
        diagnosis.add("tls", Status.SKIP, "a local Unix socket: no TLS needed")
        return
    level = config.identity.tls
    if config.engine == "postgresql":
        user = config.identity.user
        if isinstance(config.identity.credentials, SecretSource):
            user = None  # the secret names the user
        server = await pg_server_tls(config.host, config.port, user, config.database, diagnosis.timeout)
    else:
        server = await mysql_server_tls(config.host, config.port, diagnosis.timeout)
    session = negotiated_tls(conn) if conn is not None else None
    if conn is not None and session is None and server.accepts_plaintext is None:
        server = ServerTls(server.offers_tls, True)  # it just took a plain-text login
    details: dict[str, Any] = {
        "settings": level.label,
        "negotiated": session.version() if session is not None else None,
        "cipher": _cipher(session),
        "verified": session is not None and level >= Tls.VERIFIED_CA,
        "server_offers_tls": server.offers_tls,
        "server_accepts_plaintext": server.accepts_plaintext,
    }
    offers = _yes_no(server.offers_tls)
    plain = _yes_no(server.accepts_plaintext)
    facts = f"server offers TLS: {offers}; accepts plain text: {plain}"
    secret = _secret_kind(config)
    if session is not None:
        what = f"{session.version()} {details['cipher'] or ''}".strip()
        if level >= Tls.VERIFIED_CA:
            how = (
                "certificate and host name verified"
                if level is Tls.VERIFIED
                else "CA verified, host name not"
            )
            diagnosis.add("tls", Status.OK, f"{what}, {how}; {facts}", details=details)
            return
        carried = f"; the {secret} travels over it" if secret else ""
        diagnosis.add(
            "tls",
            Status.WARN,
            f"{what}, certificate NOT verified ({level.label}){carried}; {facts}",
            _VERIFY_FIXES[config.engine],
            details=details,
        )
        return
    if conn is None and level >= Tls.ENCRYPTED:
        diagnosis.add(
            "tls",
            Status.INFO,
            f"settings: {level.label} (not negotiated: no login); {facts}",
            details=details,
        )
        return
    verify = _VERIFY_FIXES[config.engine]
    if conn is None and level is Tls.OPPORTUNISTIC and server.offers_tls:
        carried = f"; the {secret} would travel over it" if secret else ""
        state = f"settings: {level.label} (it does): encrypted, certificate NOT verified{carried}"
        diagnosis.add("tls", Status.WARN, f"{state}; {facts}", verify, details=details)
        return
    if conn is None and level is Tls.OPPORTUNISTIC and server.offers_tls is None:
        state = f"settings: {level.label}, never verified"
        diagnosis.add("tls", Status.WARN, f"{state}; {facts}", verify, details=details)
        return
    carried = f"; the {secret} travels in clear text" if secret else ""
    if server.offers_tls is False:
        fix = "turn TLS on at the server (every RDS and Aurora server has it) and verify it from the client"
    else:
        fix = f"turn TLS on and {verify}"
    state = "plain text (no TLS)" if conn is not None else f"settings: {level.label}"
    diagnosis.add("tls", Status.WARN, f"{state}{carried}; {facts}", fix, details=details)


def _source_text(source: CredentialSource) -> str:
    if isinstance(source, IamSource):
        return f"IAM token for {source.user} in {source.region}"
    return f"secret {source.secret_id!r} in {source.region}"


def _secret_kind(config: Config) -> str | None:
    source = config.identity.credentials
    if isinstance(source, IamSource):
        return "IAM token"
    if isinstance(source, SecretSource):
        return "Secrets Manager password"
    return "password" if config.password else None


def _login_user(config: Config) -> str:
    source = config.identity.credentials
    if isinstance(source, SecretSource):
        return "the secret's user"
    return config.user or "the default user"


def _server_version(engine: str, conn: Any) -> str:
    try:
        if engine == "mysql":
            return str(conn.get_server_info())
        return f"PostgreSQL {conn.get_settings().server_version}"
    except Exception:  # a version is a courtesy: never a reason to fail
        return "version unknown"


def _login_fix(config: Config, exc: BaseException) -> str:
    source = config.identity.credentials
    if isinstance(exc, CredentialsError):
        return "fix the credentials source (see the credentials check)"
    if isinstance(exc, TimeoutError):
        return (
            f"check that the security group and network ACL let this machine reach "
            f"{config.host}:{config.port}, and that the instance is available"
        )
    if config.driver.is_login_error(exc):
        if isinstance(source, IamSource):
            return (
                "enable IAM login for the user (PostgreSQL: GRANT rds_iam TO it; MySQL: IDENTIFIED WITH "
                "AWSAuthenticationPlugin) and allow rds-db:connect for it in the caller's IAM policy"
            )
        if isinstance(source, SecretSource):
            return "make the secret's password the database user's (a rotation that did not finish?)"
        return "check the user name and password (percent-encode : / ? # @ % in a DSN's password)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "give the CA that signed the server's certificate (the RDS global bundle, global-bundle.pem)"
    if isinstance(exc, ConnectionRefusedError):
        return f"check the port ({config.port}) and that the database is running there"
    if isinstance(exc, OSError):
        return (
            f"check that the security group and network ACL let this machine reach "
            f"{config.host}:{config.port}, and that the instance is available"
        )
    return "read the server's message above: the database, user or server settings it names"


def _cipher(session: ssl.SSLObject | None) -> str | None:
    described = session.cipher() if session is not None else None
    return described[0] if described else None


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"
