"""How strong a connection's TLS is, read from the settings the driver will use.

The levels order what a connection's settings guarantee before its first byte is sent: nothing
(plain text), TLS if the server offers it (asyncpg's default ``prefer``), TLS whatever the certificate,
a certificate checked against a CA, and a certificate checked against a CA and the host name. The
library's own background connections are never opened with a weaker level than the connections they
serve, and the ``iam`` plugin sends its token only at ``VERIFIED`` unless told otherwise.
"""

from __future__ import annotations

import enum
import os
import ssl as ssl_module
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class Tls(enum.IntEnum):
    """What TLS settings guarantee, weakest first."""

    NONE = 0  # plain text
    OPPORTUNISTIC = 1  # TLS when the server offers it, else plain text (sslmode allow / prefer)
    ENCRYPTED = 2  # TLS or no connection; any certificate (sslmode require)
    VERIFIED_CA = 3  # the certificate is signed by a trusted CA (sslmode verify-ca)
    VERIFIED = 4  # ... and names the host connected to (sslmode verify-full)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Tls.NONE: "no TLS",
    Tls.OPPORTUNISTIC: "TLS only if the server offers it",
    Tls.ENCRYPTED: "TLS without certificate verification",
    Tls.VERIFIED_CA: "TLS verifying the CA but not the host name",
    Tls.VERIFIED: "TLS verifying the certificate and host name",
}

_SSLMODES = {
    "disable": Tls.NONE,
    "allow": Tls.OPPORTUNISTIC,
    "prefer": Tls.OPPORTUNISTIC,
    "require": Tls.ENCRYPTED,
    "verify-ca": Tls.VERIFIED_CA,
    "verify_ca": Tls.VERIFIED_CA,
    "verify-full": Tls.VERIFIED,
    "verify_full": Tls.VERIFIED,
}


def context_tls(context: ssl_module.SSLContext, *, mandatory: bool) -> Tls:
    """The level an ``SSLContext`` gives; ``mandatory``: the driver refuses to go on without TLS."""
    if context.verify_mode == ssl_module.CERT_REQUIRED:
        level = Tls.VERIFIED if context.check_hostname else Tls.VERIFIED_CA
    else:
        level = Tls.ENCRYPTED
    return level if mandatory else Tls.OPPORTUNISTIC


def dsn_sslmode(dsn: str | None) -> str | None:
    """The ``sslmode`` query parameter of a DSN, if it has one."""
    if not dsn or "sslmode" not in dsn:
        return None
    for key, value in parse_qsl(urlsplit(dsn).query, keep_blank_values=True):
        if key == "sslmode":
            return value
    return None


def postgres_tls(ssl: Any, dsn: str | None) -> Tls:
    """The level asyncpg will use for ``ssl=`` (else the DSN's ``sslmode``, else ``$PGSSLMODE``, else
    asyncpg's default ``prefer``); asyncpg treats an ``SSLContext`` and ``ssl=True`` as mandatory."""
    if ssl is None:
        ssl = dsn_sslmode(dsn) or os.environ.get("PGSSLMODE") or "prefer"
    if ssl is True:
        return Tls.VERIFIED  # asyncpg: the default context, verify-full
    if ssl is False:
        return Tls.NONE
    if isinstance(ssl, ssl_module.SSLContext):
        return context_tls(ssl, mandatory=True)
    return _SSLMODES.get(str(getattr(ssl, "name", ssl)).lower(), Tls.NONE)


def mysql_tls(ssl: Any) -> Tls:
    """The level of aiomysql's ``ssl=`` (an ``SSLContext`` or nothing). aurora_async's aiomysql
    connection refuses to log in over plain text when a context is given (aiomysql itself would go
    on unencrypted if the server does not offer TLS), so a context is mandatory TLS."""
    if isinstance(ssl, ssl_module.SSLContext):
        return context_tls(ssl, mandatory=True)
    return Tls.NONE
