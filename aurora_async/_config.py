"""Connection options: parsed once from the DSN and keyword arguments into a frozen ``Config``."""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import aiomysql
import asyncpg

from ._auth import CredentialSource, IamSource, SecretSource
from ._exceptions import ConfigurationError
from ._identity import Identity
from ._rds_hosts import HostPattern, RdsUrlType, classify_host
from ._tls import Tls, mysql_tls, postgres_tls

FailoverMode = Literal["strict_writer", "strict_reader", "reader_or_writer"]
FAILOVER_MODES: tuple[FailoverMode, ...] = ("strict_writer", "strict_reader", "reader_or_writer")
DIALECT_CODES = {
    "postgresql": ("aurora-pg", "multi-az-pg", "rds-pg", "pg"),
    "mysql": ("aurora-mysql", "multi-az-mysql", "rds-mysql", "mysql"),
}
ENGINES = ("postgresql", "mysql")
_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
SELECTOR_STRATEGIES = ("random", "round_robin", "least_connections")
KNOWN_PLUGINS = (
    "initial_connection",
    "aurora_connection_tracker",
    "failover",
    "host_monitoring",
    "iam",
    "aws_secrets_manager",
    "read_write_splitting",
)
IMPLEMENTED_PLUGINS = frozenset(
    {"initial_connection", "aurora_connection_tracker", "failover", "host_monitoring"}
    | {"iam", "aws_secrets_manager", "read_write_splitting"}
)
DEFAULT_PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring")
DEFAULT_CONNECT_TIMEOUT = 10.0

_ADDRESS_KEYWORDS = frozenset({"host", "port", "user", "password", "database", "timeout"})
# the driver's connect() keywords we accept and pass on (host, port, ... are handled separately)
_DRIVER_KEYWORDS = {
    "postgresql": frozenset(inspect.signature(asyncpg.connect).parameters)
    - {"dsn", "host", "port", "user", "password", "database", "loop", "timeout", "target_session_attrs"},
    "mysql": frozenset(inspect.signature(aiomysql.connect).parameters)
    - {"host", "port", "user", "password", "db", "loop", "connect_timeout", "unix_socket"},
}
_DRIVER_NAMES = {"postgresql": "asyncpg.connect()", "mysql": "aiomysql.connect()"}
# aiomysql keywords a mysql:// DSN may carry as query parameters: (name, is a true/false flag)
_MYSQL_DSN_KEYWORDS = {
    "charset": False,
    "sql_mode": False,
    "init_command": False,
    "program_name": False,
    "autocommit": True,
    "local_infile": True,
}


@dataclass(frozen=True, kw_only=True)
class Options:
    """aurora_async's own options; durations in seconds."""

    plugins: tuple[str, ...] = DEFAULT_PLUGINS
    failover_mode: FailoverMode = "strict_writer"
    failover_timeout: float = 60.0
    topology_refresh: float = 30.0
    topology_high_refresh: float = 0.1
    topology_high_refresh_period: float = 30.0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    auxiliary_query_timeout: float = 5.0
    cluster_instance_host_pattern: HostPattern | None = None
    cluster_id: str | None = None
    wrapper_dialect: str | None = None
    reader_host_selector_strategy: str = "random"
    # host_monitoring: a host is dead after `count` probes in a row got no answer within `interval`
    # (detection 1.2-1.6 s); calls younger than `failure_detection_time` are left running
    failure_detection_time: float = 0.0
    failure_detection_interval: float = 0.4
    failure_detection_count: int = 3
    monitor_disposal_time: float = 60.0
    # iam: a token for (region, iam_host or host, iam_port or port, user), reused for iam_expiration
    iam_region: str | None = None
    iam_host: str | None = None
    iam_port: int | None = None
    iam_expiration: float = 840.0  # tokens live 900 s: renew a minute early
    iam_allow_plaintext: bool = False  # send tokens over any connection (local testing only)
    iam_allow_unverified_tls: bool = False  # send tokens over TLS that does not verify the server
    # aws_secrets_manager: user and password from a JSON secret, reused for secrets_manager_expiration
    secrets_manager_secret_id: str | None = None
    secrets_manager_region: str | None = None
    secrets_manager_endpoint: str | None = None
    secrets_manager_secret_username_key: str = "username"
    secrets_manager_secret_password_key: str = "password"
    secrets_manager_expiration: float = 1800.0
    aws_session: Any = field(default=None, repr=False, compare=False)  # an aioboto3.Session, or None

    def has(self, plugin: str) -> bool:
        return plugin in self.plugins


@dataclass(frozen=True)
class ClusterSettings:
    """The options that govern what connections to a cluster share (its dialect, topology monitor and
    host monitors). Connections whose settings differ get a cluster each; everything else (plugins,
    failover mode and timeout, reader selection, credentials, TLS, driver arguments) is per connection."""

    wrapper_dialect: str | None
    cluster_instance_host_pattern: HostPattern | None
    topology_refresh: float
    topology_high_refresh: float
    topology_high_refresh_period: float
    auxiliary_query_timeout: float
    failure_detection_time: float
    failure_detection_interval: float
    failure_detection_count: int
    monitor_disposal_time: float

    @classmethod
    def of(cls, options: Options) -> ClusterSettings:
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})


_SECONDS = (
    "failover_timeout",
    "topology_refresh",
    "topology_high_refresh",
    "topology_high_refresh_period",
    "connect_timeout",
    "auxiliary_query_timeout",
    "failure_detection_interval",
    "monitor_disposal_time",
    "iam_expiration",
    "secrets_manager_expiration",
)
# the shortest duration each option takes: below it a monitor would probe thousands of times a second (and
# never see an answer in time), a timeout would expire before any network round trip, a credential would
# be fetched again for every connection. topology_refresh also bounds how long a closed cluster's dialect
# and topology are reused, which tests shorten to 0.01 s. "timeout" is connect()'s name for
# connect_timeout. (failure_detection_time may be zero: it is an age, not a period.)
MINIMUM_SECONDS: dict[str, float] = {
    "failover_timeout": 1.0,
    "topology_refresh": 0.01,
    "topology_high_refresh": 0.05,
    "topology_high_refresh_period": 0.05,
    "connect_timeout": 0.05,
    "timeout": 0.05,
    "auxiliary_query_timeout": 0.05,
    "failure_detection_interval": 0.05,
    "monitor_disposal_time": 0.1,
    "iam_expiration": 1.0,
    "secrets_manager_expiration": 1.0,
}
_STRINGS = (
    "iam_region",
    "iam_host",
    "secrets_manager_secret_id",
    "secrets_manager_region",
    "secrets_manager_endpoint",
    "secrets_manager_secret_username_key",
    "secrets_manager_secret_password_key",
)
_UNSET_BY_DEFAULT = frozenset(f.name for f in fields(Options) if f.default is None)
OPTION_NAMES = frozenset(
    {*_SECONDS, "plugins", "failover_mode", "cluster_instance_host_pattern", "cluster_id"}
    | {"failure_detection_time", "failure_detection_count"}
    | {*_STRINGS, "iam_port", "iam_allow_plaintext", "iam_allow_unverified_tls", "aws_session"}
    | {"wrapper_dialect", "reader_host_selector_strategy"}
)


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
    identity: Identity = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        options = self.options
        ssl = self.driver_kwargs.get("ssl")
        identity = Identity(
            engine=self.engine,
            user=self.user,
            password=self.password,
            database=self.database,
            driver_kwargs=self.driver_kwargs,
            dsn=self.dsn,
            credentials=credential_source(options, self.host, self.user),
            connect_timeout=options.connect_timeout,
            tls=mysql_tls(ssl) if self.engine == "mysql" else postgres_tls(ssl, self.dsn),
        )
        object.__setattr__(self, "identity", identity)

    @property
    def url_type(self) -> RdsUrlType:
        return classify_host(self.host).url_type


def parse(dsn: str | None = None, **kwargs: Any) -> Config:
    """Validate the DSN and keyword arguments; raise :class:`ConfigurationError` naming what is wrong.

    The engine comes from the DSN's scheme (``postgresql://``, ``mysql://``) or ``engine=``."""
    engine = _engine(dsn, kwargs.pop("engine", None))
    ours = {name: kwargs.pop(name) for name in list(kwargs) if name in OPTION_NAMES}
    host, port = kwargs.pop("host", None), kwargs.pop("port", None)
    user, password = kwargs.pop("user", None), kwargs.pop("password", None)
    database = kwargs.pop("database", None)
    if engine == "mysql" and "db" in kwargs:  # aiomysql's name for it
        if database is not None:
            raise ConfigurationError("give the database once: database= or db=")
        database = kwargs.pop("db")
    timeout = kwargs.pop("timeout", None)
    unknown = sorted(set(kwargs) - _DRIVER_KEYWORDS[engine])
    if unknown:
        raise ConfigurationError(
            f"unknown option {unknown[0]!r}: accepted are aurora_async options "
            f"({', '.join(sorted(OPTION_NAMES))}) and {_DRIVER_NAMES[engine]} arguments "
            f"({', '.join(sorted(_DRIVER_KEYWORDS[engine] | _ADDRESS_KEYWORDS))})"
        )
    stripped = None
    if dsn is not None:
        stripped, from_dsn = _split_dsn(dsn)
        if engine == "mysql":
            stripped = None
            for name, flag in _MYSQL_DSN_KEYWORDS.items():
                if name in from_dsn and name not in kwargs:
                    value = from_dsn.pop(name)
                    kwargs[name] = _flag(name, value) if flag else value
        for name, value in from_dsn.pop("_address", {}).items():
            if name == "host" and host is None:
                host = value
            elif name == "port" and port is None:
                port = value
            elif name == "user" and user is None:
                user = value
            elif name == "password" and password is None:
                password = value
            elif name == "database" and database is None:
                database = value
        for name, value in from_dsn.items():
            ours.setdefault(name, value)
    if not host:
        raise ConfigurationError("no host given: pass a postgresql:// or mysql:// DSN, or host=")
    if not isinstance(host, str) or "," in host or "/" in host:
        raise ConfigurationError(
            f"host must be one host name or address, not {host!r}: aurora_async finds the cluster's "
            "instances itself (multi-host lists and Unix sockets are not supported)"
        )
    options = _options(ours, host, engine)
    if timeout is not None:
        options = _replace_timeout(options, timeout)
    check_credentials_options(options, host, user, password)
    config = Config(
        host=host,
        port=_DEFAULT_PORTS[engine] if port is None else _port(port),
        user=user,
        password=password,
        database=database,
        options=options,
        driver_kwargs=MappingProxyType(kwargs),
        dsn=stripped,
        engine=engine,
    )
    check_iam_tls(config)
    return config


def _engine(dsn: Any, engine: Any) -> str:
    """The engine named by ``engine=``, else by the DSN's scheme (PostgreSQL when neither says)."""
    _check_dsn_type(dsn)
    if engine is not None and engine not in ENGINES:
        raise ConfigurationError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    scheme = dsn.split("://", 1)[0].lower() if isinstance(dsn, str) and "://" in dsn else None
    from_dsn = _SCHEMES.get(scheme) if scheme is not None else None
    if scheme is not None and from_dsn is None:
        raise ConfigurationError(
            f"DSN scheme must be postgresql://, postgres:// or mysql://, not {scheme[:20]!r}://"
        )
    if engine is not None and from_dsn is not None and engine != from_dsn:
        raise ConfigurationError(f"engine={engine!r} contradicts the DSN's {scheme}:// scheme")
    return str(engine or from_dsn or "postgresql")


def _check_dsn_type(dsn: Any) -> None:
    if dsn is not None and not isinstance(dsn, str):
        # the value is not shown: a DSN (as bytes, say) holds the password
        raise ConfigurationError(
            f"dsn must be a str (a postgresql:// or mysql:// URL) or None, not {type(dsn).__name__}"
        )


def _split_dsn(dsn: str) -> tuple[str | None, dict[str, Any]]:
    """Take host, port, credentials and our options out of a DSN; return the rest for asyncpg."""
    _check_dsn_type(dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:  # its message quotes the netloc, password included: say it without quoting
        parts = None
    if parts is None:
        raise ConfigurationError(
            "the DSN is not a valid URL: percent-encode any of : / ? # [ ] @ % in the user name and "
            "password (urllib.parse.quote(password, safe=''))"
        )
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"DSN scheme must be postgresql://, postgres:// or mysql://, not {parts.scheme!r}://"
        )
    found: dict[str, Any] = {}
    address: dict[str, Any] = {}
    netloc = parts.netloc
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
    if parts.path.strip("/"):
        address["database"] = unquote(parts.path.lstrip("/"))
    rest = []
    mysql = _SCHEMES[parts.scheme] == "mysql"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in OPTION_NAMES or (mysql and key in _MYSQL_DSN_KEYWORDS):
            found[key] = value
        elif mysql:
            accepted = f"accepted are aurora_async options and {', '.join(_MYSQL_DSN_KEYWORDS)}"
            guess = _near_miss(key, OPTION_NAMES | set(_MYSQL_DSN_KEYWORDS))
            raise ConfigurationError(
                f"unknown parameter {key[:40]!r} in the mysql:// DSN: "
                + (f"did you mean {guess!r}? ({accepted})" if guess else accepted)
            )
        elif key not in _ASYNCPG_DSN_PARAMETERS and (guess := _near_miss(key, OPTION_NAMES)):
            # asyncpg would send it to the server as a setting, which refuses the connection: a typo of
            # an option is not a setting
            raise ConfigurationError(
                f"unknown parameter {key[:40]!r} in the DSN: did you mean {guess!r}? (a parameter that is "
                "not an aurora_async option goes to the server as a setting)"
            )
        else:
            rest.append((key, value))
    found["_address"] = address
    stripped = f"{parts.scheme}:///?{urlencode(rest)}" if rest else None
    return stripped, found


# what asyncpg itself reads from a postgresql:// DSN's query (asyncpg 0.30-0.32); the rest it sends to
# the server as settings
_ASYNCPG_DSN_PARAMETERS = frozenset(
    {"host", "port", "dbname", "database", "user", "password", "passfile", "service", "sslmode", "sslcert"}
    | {"sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation", "ssl_min_protocol_version"}
    | {"ssl_max_protocol_version", "target_session_attrs", "krbsrvname", "gsslib"}
)
# how close (difflib's ratio) a DSN parameter must be to an option's name to count as its typo. The
# nearest of PostgreSQL 15's settings and asyncpg's parameters is archive_timeout (0.77 to
# failover_timeout); typos score 0.8 and more (topology_refresh_ms 0.91, failovr_timeout 0.97).
_NEAR_MISS_CUTOFF = 0.8


def _near_miss(key: str, names: Iterable[str]) -> str | None:
    """The name ``key`` looks like a typo of, if any. A dotted name (``myext.setting``, an extension's
    or the application's own) is no typo of ours."""
    if "." in key:
        return None
    candidate = key.strip().lower().replace("-", "_")
    matches = difflib.get_close_matches(candidate, sorted(names), n=1, cutoff=_NEAR_MISS_CUTOFF)
    return matches[0] if matches else None


def _port(value: Any, name: str = "port") -> int:
    try:
        port = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(f"{name} must be an integer from 1 to 65535, not {value!r}") from None
    if not 0 < port < 65536 or isinstance(value, bool) or (isinstance(value, float) and port != value):
        raise ConfigurationError(f"{name} must be an integer from 1 to 65535, not {value!r}")
    return port


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def _seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool):  # float(True) is 1.0: timeout=True is a mistake, not one second
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigurationError(f"{name} must be a {kind}, finite number of seconds, not {value!r}")
    minimum = MINIMUM_SECONDS.get(name, 0.0)
    if seconds < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g} s, not {value!r}")
    return seconds


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}") from None
    if count < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    return count


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in accepted:
        raise ConfigurationError(f"{name} must be one of {', '.join(accepted)}, not {value!r}")
    return text


def _plugins(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        codes = [c.strip() for c in value.split(",") if c.strip()]
    elif isinstance(value, (list, tuple)):
        codes = [str(c).strip() for c in value]
    else:
        raise ConfigurationError(
            f"plugins must be a tuple of plugin codes or a comma-separated string, not {value!r}"
        )
    for code in codes:
        if code not in KNOWN_PLUGINS:
            raise ConfigurationError(f"unknown plugin code {code!r}: accepted are {', '.join(KNOWN_PLUGINS)}")
        if code not in IMPLEMENTED_PLUGINS:
            raise ConfigurationError(
                f"plugin {code!r} is not available in this version of aurora_async; "
                f"available are {', '.join(sorted(IMPLEMENTED_PLUGINS))}"
            )
    return tuple(dict.fromkeys(codes))


def _options(values: dict[str, Any], host: str, engine: str = "postgresql") -> Options:
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if value is None and name in _UNSET_BY_DEFAULT:
            continue  # None for an option that defaults to None means "not set", as leaving it out does
        if name in _SECONDS:
            kwargs[name] = _seconds(name, value)
        elif name == "plugins":
            kwargs[name] = _plugins(value)
        elif name == "failover_mode":
            kwargs[name] = _choice(name, str(value).replace("-", "_"), FAILOVER_MODES)
        elif name == "wrapper_dialect":
            kwargs[name] = _choice(name, value, DIALECT_CODES[engine])
        elif name == "reader_host_selector_strategy":
            kwargs[name] = _choice(name, value, SELECTOR_STRATEGIES)
        elif name == "cluster_instance_host_pattern":
            kwargs[name] = value if isinstance(value, HostPattern) else HostPattern.parse(str(value))
        elif name == "cluster_id":
            kwargs[name] = str(value)
        elif name == "failure_detection_time":
            kwargs[name] = _seconds(name, value, allow_zero=True)
        elif name == "failure_detection_count":
            kwargs[name] = _count(name, value)
        elif name in _STRINGS:
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
            kwargs[name] = value.strip()
        elif name == "iam_port":
            kwargs[name] = _port(value, name)
        elif name in ("iam_allow_plaintext", "iam_allow_unverified_tls"):
            kwargs[name] = _flag(name, value)
        elif name == "aws_session":
            kwargs[name] = value
    if "failover_mode" not in kwargs:
        reader_endpoint = classify_host(host).url_type is RdsUrlType.RDS_READER_CLUSTER
        kwargs["failover_mode"] = "reader_or_writer" if reader_endpoint else "strict_writer"
    kwargs["failover_mode"] = cast(FailoverMode, kwargs["failover_mode"])
    return Options(**kwargs)


def _replace_timeout(options: Options, timeout: Any) -> Options:
    return replace(options, connect_timeout=_seconds("timeout", timeout))


_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):")


def iam_region(options: Options, host: str) -> str | None:
    """The region IAM tokens are signed for: ``iam_region``, else the one in the RDS host name."""
    return options.iam_region or classify_host(options.iam_host or host).region


def secret_region(options: Options) -> str | None:
    """The secret's region: ``secrets_manager_region``, else the one in its ARN."""
    if options.secrets_manager_region:
        return options.secrets_manager_region
    match = _ARN_REGION.match(options.secrets_manager_secret_id or "")
    return match.group("region") if match else None


def check_credentials_options(options: Options, host: str, user: Any, password: Any) -> None:
    """The ``iam`` and ``aws_secrets_manager`` plugins' requirements, checked before any I/O."""
    iam, secrets = options.has("iam"), options.has("aws_secrets_manager")
    if not (iam or secrets):
        return
    if iam and secrets:
        raise ConfigurationError(
            "plugins 'iam' and 'aws_secrets_manager' both supply the password: choose one"
        )
    plugin = "iam" if iam else "aws_secrets_manager"
    if importlib.util.find_spec("aioboto3") is None:
        raise ConfigurationError(f"plugin {plugin!r} needs aioboto3: pip install 'aurora_async[aws]'")
    if password is not None:
        raise ConfigurationError(f"password given together with plugin {plugin!r}, which supplies it")
    if iam:
        if not user:
            raise ConfigurationError("plugin 'iam' needs the database user (user= or in the DSN)")
        if iam_region(options, host) is None:
            raise ConfigurationError(
                f"plugin 'iam' needs a region: {options.iam_host or host!r} is not an RDS host name, so set "
                "iam_region (e.g. 'us-east-1')"
            )
    if secrets:
        if not options.secrets_manager_secret_id:
            raise ConfigurationError(
                "plugin 'aws_secrets_manager' needs secrets_manager_secret_id (name or ARN)"
            )
        if secret_region(options) is None:
            raise ConfigurationError(
                "plugin 'aws_secrets_manager' needs a region: set secrets_manager_region, or give the "
                "secret's ARN as secrets_manager_secret_id"
            )


def check_iam_tls(config: Config) -> None:
    """An IAM token is a password good for 15 minutes: it is sent only over TLS that verifies the
    server (certificate and host name), unless the caller opted out."""
    options = config.options
    if not options.has("iam") or options.iam_allow_plaintext:
        return
    needed = Tls.ENCRYPTED if options.iam_allow_unverified_tls else Tls.VERIFIED
    tls = config.identity.tls
    if tls >= needed:
        return
    how = (
        "ssl=ssl.create_default_context(cafile='global-bundle.pem'), the RDS CA bundle, or "
        "?sslmode=verify-full&sslrootcert=global-bundle.pem in the DSN"
        if config.engine == "postgresql"
        else "ssl=ssl.create_default_context(cafile='global-bundle.pem'), the RDS CA bundle"
    )
    raise ConfigurationError(
        f"plugin 'iam' sends its token as the password, so it needs TLS that verifies the server; this "
        f"connection has {tls.label}: pass {how} (iam_allow_unverified_tls=True accepts TLS without "
        "verification; iam_allow_plaintext=True turns this check off, for local testing only)"
    )


def credential_source(options: Options, host: str, user: str | None) -> CredentialSource | None:
    """Where a connection's password comes from, when a credentials plugin supplies it."""
    if options.has("iam") and user:
        region = iam_region(options, host)
        if region is not None:
            return IamSource(
                user=user,
                region=region,
                host=options.iam_host,
                port=options.iam_port,
                expiration=options.iam_expiration,
                aws_session=options.aws_session,
            )
    if options.has("aws_secrets_manager") and options.secrets_manager_secret_id:
        region = secret_region(options)
        if region is not None:
            return SecretSource(
                secret_id=options.secrets_manager_secret_id,
                region=region,
                endpoint=options.secrets_manager_endpoint,
                username_key=options.secrets_manager_secret_username_key,
                password_key=options.secrets_manager_secret_password_key,
                expiration=options.secrets_manager_expiration,
                aws_session=options.aws_session,
            )
    return None
