"""A connection's configuration: the DSN and keyword arguments, checked once into a frozen ``Config``.

What each engine accepts (its port, its driver's keywords, what its DSN may carry, how its ``ssl=``
reads) comes from the engine's :class:`~aurora_async._driver.Driver`; aurora_async's own options are
the table in ``_options``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ._credential_options import (
    check_credentials_options,
    check_iam_auth_plugin,
    check_iam_tls,
    credential_source,
)
from ._custom_endpoint import EndpointSource, endpoint_source
from ._driver import Driver
from ._dsn import check_dsn_type, split_dsn
from ._engines import DRIVERS, ENGINES, SCHEMES
from ._exceptions import ConfigurationError
from ._identity import Identity
from ._local_socket import is_local_socket, local_socket_mode
from ._options import OPTION_NAMES, Options, read_options, read_port, read_timeout
from ._plugins import Plugin
from ._rds_hosts import RdsUrlType, classify_host
from ._rds_proxy import proxy_mode

_ADDRESS_KEYWORDS = frozenset({"host", "port", "user", "password", "database", "timeout"})


@dataclass(frozen=True)
class Config:
    """A connection's parsed settings: where it goes, its options, and who it is (``identity``)."""

    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    database: str | None
    options: Options
    driver_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    dsn: str | None = field(default=None, repr=False)  # the caller's DSN minus our options
    engine: str = "postgresql"  # or "mysql": which driver serves the cluster
    custom_endpoint: EndpointSource | None = None  # the custom endpoint the host is, if any
    failover_mode_given: bool = False  # through a custom endpoint: the caller chose failover_mode
    identity: Identity = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identity = Identity(
            engine=self.engine,
            user=self.user,
            password=self.password,
            database=self.database,
            driver_kwargs=self.driver_kwargs,
            dsn=self.dsn,
            credentials=credential_source(self.options, self.host, self.user),
            connect_timeout=self.options.connect_timeout,
            resume_timeout=self.options.resume_timeout,
            tls=self.driver.tls(self.driver_kwargs.get("ssl"), self.dsn),
        )
        object.__setattr__(self, "identity", identity)

    @property
    def driver(self) -> Driver:
        return DRIVERS[self.engine]

    @property
    def url_type(self) -> RdsUrlType:
        return classify_host(self.host).url_type


def parse(dsn: str | None = None, **kwargs: Any) -> Config:
    """Validate the DSN and keyword arguments; raise :class:`ConfigurationError` naming what is wrong.

    The engine comes from the DSN's scheme (``postgresql://``, ``mysql://``) or ``engine=``."""
    driver = DRIVERS[_engine(dsn, kwargs.pop("engine", None))]
    for alias, name in driver.keyword_aliases.items():  # aiomysql's db= is database=
        if alias in kwargs:
            if kwargs.get(name) is not None:
                raise ConfigurationError(f"give the {name} once: {name}= or {alias}=")
            kwargs[name] = kwargs.pop(alias)
    ours = {name: kwargs.pop(name) for name in list(kwargs) if name in OPTION_NAMES}
    address = {name: kwargs.pop(name, None) for name in ("host", "port", "user", "password", "database")}
    timeout = kwargs.pop("timeout", None)
    unknown = sorted(set(kwargs) - driver.connect_keywords)
    if unknown:
        raise ConfigurationError(
            f"unknown option {unknown[0]!r}: accepted are aurora_async options "
            f"({', '.join(sorted(OPTION_NAMES))}) and {driver.connect_name} arguments "
            f"({', '.join(sorted(driver.connect_keywords | _ADDRESS_KEYWORDS))})"
        )
    passed_on = None
    if dsn is not None:
        split = split_dsn(dsn, driver)
        passed_on = split.passed_on
        for source, given in ((split.address, address), (split.options, ours), (split.driver_kwargs, kwargs)):
            for name, value in source.items():  # what the keyword arguments say wins
                if given.get(name) is None:
                    given[name] = value
    environment = _from_environment(driver, address)  # as the driver would: asyncpg reads PGHOST, ...
    address.update((k, v) for k, v in environment.items() if k != "password")
    unix_socket = kwargs.get("unix_socket")
    if unix_socket is None:
        kwargs.pop("unix_socket", None)  # aiomysql's default, said out loud
    elif not isinstance(unix_socket, str) or not is_local_socket(unix_socket):
        raise ConfigurationError(f"unix_socket must be an absolute path, not {unix_socket!r}")
    else:
        address["host"] = unix_socket  # aiomysql then ignores host: the socket is what is reached
    host = address["host"]
    if not host:
        raise ConfigurationError("no host given: pass a postgresql:// or mysql:// DSN, or host=")
    if not isinstance(host, str) or "," in host or ("/" in host and not is_local_socket(host)):
        raise ConfigurationError(
            f"host must be one host name or address (or, for PostgreSQL, a Unix socket directory), not "
            f"{host!r}: aurora_async finds the cluster's instances itself (no multi-host lists)"
        )
    options = read_options(ours, host)
    if options.wrapper_dialect is not None and options.wrapper_dialect not in driver.dialects:
        raise ConfigurationError(
            f"wrapper_dialect must be one of {', '.join(driver.dialects)}, not {ours['wrapper_dialect']!r}"
        )
    options = proxy_mode(options, host, driver)
    options = local_socket_mode(options, host, driver)
    if timeout is not None:
        options = replace(options, connect_timeout=read_timeout(timeout))
    if (
        "password" in environment
        and not options.has(Plugin.IAM)
        and not options.has(Plugin.AWS_SECRETS_MANAGER)
    ):
        address["password"] = environment["password"]  # (a token or a secret supplies it otherwise)
    check_credentials_options(options, host, address["user"], address["password"])
    check_iam_auth_plugin(options, kwargs)
    custom_endpoint = endpoint_source(options, host)
    port = address["port"]
    config = Config(
        host=host,
        port=driver.default_port if port is None else read_port("port", port),
        user=address["user"],
        password=address["password"],
        database=address["database"],
        options=options,
        driver_kwargs=MappingProxyType(kwargs),
        dsn=passed_on,
        engine=driver.engine,
        custom_endpoint=custom_endpoint,
        # (only a custom endpoint's type changes the default: elsewhere giving it is leaving it out)
        failover_mode_given=custom_endpoint is not None and ours.get("failover_mode") is not None,
    )
    check_iam_tls(options, config.identity.tls, dsn_sslmode=driver.dsn_passthrough)
    return config


def _from_environment(driver: Driver, address: Mapping[str, Any]) -> dict[str, str]:
    """What the driver would read from the environment for what neither the DSN nor a keyword gives."""
    return {
        name: os.environ[variable]
        for name, variable in driver.environment.items()
        if address.get(name) is None and os.environ.get(variable)
    }


def _engine(dsn: Any, engine: Any) -> str:
    """The engine named by ``engine=``, else by the DSN's scheme (PostgreSQL when neither says)."""
    check_dsn_type(dsn)
    if engine is not None and engine not in ENGINES:
        raise ConfigurationError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    scheme = dsn.split("://", 1)[0].lower() if isinstance(dsn, str) and "://" in dsn else None
    from_dsn = SCHEMES.get(scheme) if scheme is not None else None
    if scheme is not None and from_dsn is None:
        # quoted only when it looks like a scheme: a mangled DSN's text before "://" may hold a password
        shown = repr(scheme) + "://" if re.fullmatch(r"[a-z][a-z0-9+.\-]{0,29}", scheme) else "something else"
        raise ConfigurationError(f"DSN scheme must be {_either(SCHEMES)}, not {shown}")
    if engine is not None and from_dsn is not None and engine != from_dsn:
        raise ConfigurationError(f"engine={engine!r} contradicts the DSN's {scheme}:// scheme")
    return str(engine or from_dsn or "postgresql")


def _either(schemes: Mapping[str, str]) -> str:
    names = [f"{scheme}://" for scheme in schemes]
    return ", ".join(names[:-1]) + " or " + names[-1]
