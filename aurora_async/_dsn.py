"""Reading a DSN: the address and credentials, aurora_async's options, and what goes on to the driver."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ._driver import Driver
from ._exceptions import ConfigurationError
from ._options import OPTION_NAMES, read_flag

# how close (difflib's ratio) a DSN parameter must be to an option's name to count as its typo. The
# nearest of PostgreSQL 15's settings and asyncpg's parameters is archive_timeout (0.77 to
# failover_timeout); typos score 0.8 and more (topology_refresh_ms 0.91, failovr_timeout 0.97).
_NEAR_MISS_CUTOFF = 0.8


def check_dsn_type(dsn: Any) -> None:
    if dsn is not None and not isinstance(dsn, str):
        # the value is not shown: a DSN (as bytes, say) holds the password
        raise ConfigurationError(
            f"dsn must be a str (a postgresql:// or mysql:// URL) or None, not {type(dsn).__name__}"
        )


@dataclass
class SplitDsn:
    """What a DSN says: the address and credentials, our options, the driver's keywords, and the
    DSN to pass on to a driver that reads one itself (None when nothing is left for it)."""

    address: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    driver_kwargs: dict[str, Any] = field(default_factory=dict)
    passed_on: str | None = None


def split_dsn(dsn: str, driver: Driver) -> SplitDsn:
    """Take host, port, credentials, our options and the driver's keywords out of ``dsn`` (a str:
    :func:`check_dsn_type` first)."""
    try:
        parts = urlsplit(dsn)
    except ValueError:  # its message quotes the netloc, password included: say it without quoting
        parts = None
    if parts is None:
        raise ConfigurationError(
            "the DSN is not a valid URL: percent-encode any of : / ? # [ ] @ % in the user name and "
            "password (urllib.parse.quote(password, safe=''))"
        )
    split = SplitDsn(address=_address(parts.netloc))
    if parts.path.strip("/"):
        split.address["database"] = unquote(parts.path.lstrip("/"))
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("host", "port") and driver.dsn_passthrough:
            # libpq's and asyncpg's ?host=/run/postgresql (a Unix socket directory): when the URL has none
            if key not in split.address:
                split.address[key] = _address(f":{value}")["port"] if key == "port" else value
        elif key in OPTION_NAMES:
            split.options[key] = value
        elif key in driver.dsn_keywords:
            split.driver_kwargs[key] = read_flag(key, value) if driver.dsn_keywords[key] else value
        elif not driver.dsn_passthrough:
            accepted = f"accepted are aurora_async options and {', '.join(driver.dsn_keywords)}"
            guess = near_miss(key, OPTION_NAMES | set(driver.dsn_keywords))
            raise ConfigurationError(
                f"unknown parameter {key[:40]!r} in the {parts.scheme}:// DSN: "
                + (f"did you mean {guess!r}? ({accepted})" if guess else accepted)
            )
        elif key not in driver.dsn_parameters and (guess := near_miss(key, OPTION_NAMES)):
            # the driver would send it to the server as a setting, which refuses the connection: a typo
            # of an option is not a setting
            raise ConfigurationError(
                f"unknown parameter {key[:40]!r} in the DSN: did you mean {guess!r}? (a parameter that is "
                "not an aurora_async option goes to the server as a setting)"
            )
        else:
            rest.append((key, value))
    if driver.dsn_passthrough and rest:
        split.passed_on = f"{parts.scheme}:///?{urlencode(rest)}"
    return split


def _address(netloc: str) -> dict[str, Any]:
    address: dict[str, Any] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        address["user"] = unquote(user) or None
        if password:
            address["password"] = unquote(password)
    # the errors below quote no part of the netloc: an unencoded '/', '?' or '#' in a password ends it
    # early, so what looks like a host list or a port may be part of the password
    if "," in netloc:
        raise ConfigurationError(
            "the DSN names several hosts: give the cluster endpoint; aurora_async finds the instances"
        )
    if netloc.startswith("["):
        raise ConfigurationError("IPv6 literal hosts are not supported; use a host name")
    host, _, port = netloc.partition(":")
    if host:
        address["host"] = unquote(host)
    if port:
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
            raise ConfigurationError(
                "the DSN's port must be a number from 1 to 65535 (if the password contains / ? or #, "
                "percent-encode it)"
            )
        address["port"] = port
    return address


def near_miss(key: str, names: Iterable[str]) -> str | None:
    """The name ``key`` looks like a typo of, if any. A dotted name (``myext.setting``, an extension's
    or the application's own) is no typo of ours."""
    if "." in key:
        return None
    candidate = key.strip().lower().replace("-", "_")
    matches = difflib.get_close_matches(candidate, sorted(names), n=1, cutoff=_NEAR_MISS_CUTOFF)
    return matches[0] if matches else None
