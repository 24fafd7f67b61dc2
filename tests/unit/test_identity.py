"""Identities and TLS levels, without sockets: what each connection is, and which identity the
library's own connections borrow."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async._identity import Identities, Identity
from aurora_async._tls import Tls, mysql_tls, postgres_tls
from aurora_async.mysql.driver import connect_kwargs

CLUSTER = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"


def _context(*, verify: bool, hostname: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = hostname
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return context


@pytest.mark.parametrize(
    ("ssl_arg", "dsn", "level"),
    [
        (None, None, Tls.OPPORTUNISTIC),  # asyncpg's default: prefer
        ("disable", None, Tls.NONE),
        (False, None, Tls.NONE),
        ("allow", None, Tls.OPPORTUNISTIC),
        ("require", None, Tls.ENCRYPTED),
        ("verify-ca", None, Tls.VERIFIED_CA),
        ("verify-full", None, Tls.VERIFIED),
        (True, None, Tls.VERIFIED),
        (None, "postgresql:///?sslmode=require", Tls.ENCRYPTED),
        (None, "postgresql:///?sslmode=verify-full&sslrootcert=/ca.pem", Tls.VERIFIED),
        ("disable", "postgresql:///?sslmode=verify-full", Tls.NONE),  # the keyword wins, as in asyncpg
        (_context(verify=False, hostname=False), None, Tls.ENCRYPTED),
        (_context(verify=True, hostname=False), None, Tls.VERIFIED_CA),
        (_context(verify=True, hostname=True), None, Tls.VERIFIED),
    ],
)
def test_postgres_tls_levels(
    ssl_arg: Any, dsn: str | None, level: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert postgres_tls(ssl_arg, dsn) is level


def test_postgres_tls_reads_pgsslmode_like_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    assert postgres_tls(None, None) is Tls.VERIFIED
    assert postgres_tls(None, "postgresql:///?sslmode=disable") is Tls.NONE


def test_mysql_tls_levels() -> None:
    assert mysql_tls(None) is Tls.NONE
    assert mysql_tls(_context(verify=True, hostname=True)) is Tls.VERIFIED
    assert mysql_tls(_context(verify=False, hostname=False)) is Tls.ENCRYPTED


@pytest.mark.parametrize(
    "accepted",
    [
        {"ssl": "verify-full"},
        {"ssl": _context(verify=True, hostname=True)},
        {"dsn": f"postgresql://app@{CLUSTER}/db?sslmode=verify-full&sslrootcert=/rds/global-bundle.pem"},
        {"ssl": "require", "iam_allow_unverified_tls": True},
        {"ssl": "disable", "iam_allow_plaintext": True},
    ],
)
def test_iam_accepts_verified_tls_and_the_opt_outs(accepted: dict[str, Any]) -> None:
    dsn = accepted.pop("dsn", None)
    options = {"host": CLUSTER, "user": "app"} if dsn is None else {}
    config = parse(dsn, plugins=("iam",), **options, **accepted)
    assert config.identity.credentials is not None and config.identity.credentials.kind == "iam"


@pytest.mark.parametrize("mode", ["require", "prefer", "allow", None])
def test_iam_refuses_unverified_tls_in_the_dsn_as_it_does_the_keyword(
    mode: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    dsn = f"postgresql://app@{CLUSTER}/db?plugins=iam"
    with pytest.raises(ConfigurationError, match="needs TLS that verifies the server"):
        parse(dsn if mode is None else f"{dsn}&sslmode={mode}")
    with pytest.raises(ConfigurationError, match="needs TLS that verifies the server"):
        parse(dsn, ssl=mode)


def test_mysql_iam_needs_a_verifying_context() -> None:
    base = {"host": CLUSTER, "user": "app", "plugins": ("iam",)}
    with pytest.raises(ConfigurationError, match="has no TLS"):
        parse("mysql://", **base)
    with pytest.raises(ConfigurationError, match="without certificate verification"):
        parse("mysql://", ssl=_context(verify=False, hostname=False), **base)
    parse("mysql://", ssl=_context(verify=True, hostname=True), **base)


def test_mysql_iam_logs_in_with_clear_password_only_over_tls_unless_told_otherwise() -> None:
    base = {"host": CLUSTER, "user": "app", "plugins": ("iam",)}
    verifying = _context(verify=True, hostname=True)
    kwargs = connect_kwargs(parse("mysql://", ssl=verifying, **base).identity, CLUSTER, 3306)
    assert kwargs["auth_plugin"] == "mysql_clear_password" and kwargs["cleartext_needs_tls"] is True
    opted_out = parse("mysql://", iam_allow_plaintext=True, **base).identity
    assert connect_kwargs(opted_out, CLUSTER, 3306)["cleartext_needs_tls"] is False
    # a password is the driver's business: aiomysql's defaults, untouched
    plain = connect_kwargs(parse("mysql://", host=CLUSTER, user="app", password="pw").identity, CLUSTER, 3306)
    assert "auth_plugin" not in plain and "cleartext_needs_tls" not in plain
    # another auth_plugin would hash or withhold the token
    with pytest.raises(
        ConfigurationError, match="auth_plugin='mysql_native_password'.*leave auth_plugin out"
    ):
        parse("mysql://", ssl=verifying, auth_plugin="mysql_native_password", **base)
    parse("mysql://", ssl=verifying, auth_plugin="mysql_clear_password", **base)


def _identity(user: str, tls: Tls, password: str = "pw") -> Identity:
    return parse(host=CLUSTER, user=user, password=password, ssl=_SSL_OF[tls]).identity


_SSL_OF = {Tls.NONE: "disable", Tls.ENCRYPTED: "require", Tls.VERIFIED: "verify-full"}


def test_identity_hides_its_password_and_knows_its_equals() -> None:
    one, same = _identity("app", Tls.VERIFIED, "hunter2-pw"), _identity("app", Tls.VERIFIED, "hunter2-pw")
    assert "hunter2" not in repr(one) and "app" in repr(one)
    assert one.fingerprint == same.fingerprint and one.login == same.login
    assert _identity("app", Tls.VERIFIED, "other").login != one.login
    other_settings = parse(
        host=CLUSTER, user="app", password="hunter2-pw", ssl="verify-full", server_settings={"a": "b"}
    )
    assert (
        other_settings.identity.login == one.login and other_settings.identity.fingerprint != one.fingerprint
    )


def test_background_borrows_the_strongest_tls_first() -> None:
    identities = Identities()
    plain, verified = _identity("a", Tls.NONE), _identity("b", Tls.VERIFIED)
    identities.add(plain)
    identities.add(verified)
    first, second = identities.for_background()
    assert first is verified
    # a's login over b's TLS settings, never a's plain text
    assert (second.user, second.tls) == ("a", Tls.VERIFIED)
    identities.remove(verified)
    assert identities.for_background() == [plain]  # only plain connections left: plain is enough


def test_background_prefers_the_login_that_last_worked_and_skips_a_refused_one() -> None:
    identities = Identities()
    old, new = _identity("app", Tls.ENCRYPTED, "old"), _identity("app", Tls.ENCRYPTED, "new")
    identities.add(old)
    identities.add(new)
    identities.logged_in(old)
    assert identities.for_background()[0] is old
    identities.refused(old)  # the password was rotated
    assert identities.for_background() == [new, old]
    identities.logged_in(new)
    identities.logged_in(old)  # and rotated back: the last accepted login leads
    assert identities.for_background()[0] is old


def test_identities_are_counted() -> None:
    identities = Identities()
    one = _identity("app", Tls.NONE)
    twin = _identity("app", Tls.NONE)  # equal settings, another connect() call
    identities.add(one)
    identities.add(twin)
    assert len(identities) == 1
    identities.remove(one)
    assert len(identities) == 1 and identities.for_background() == [one]
    identities.remove(twin)
    assert len(identities) == 0 and identities.for_background() == []
