"""aurora_async's own options: one line per option (its type, default, how a value is read, what it
does), and the readers that turn a DSN string or a keyword argument into a checked value."""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast, get_args

from ._exceptions import ConfigurationError
from ._plugins import DEFAULT_PLUGINS, Plugin, read_plugins
from ._rds_hosts import HostPattern, RdsUrlType, classify_host

FailoverMode = Literal["strict_writer", "strict_reader", "reader_or_writer"]
FAILOVER_MODES: tuple[FailoverMode, ...] = get_args(FailoverMode)
# an Aurora Global Database's home-region failover modes (``_global_failover``), as the incumbent's
GlobalFailoverMode = Literal[
    "strict_writer",
    "strict_home_reader",
    "strict_out_of_home_reader",
    "strict_any_reader",
    "home_reader_or_writer",
    "out_of_home_reader_or_writer",
    "any_reader_or_writer",
]
GLOBAL_FAILOVER_MODES: tuple[GlobalFailoverMode, ...] = get_args(GlobalFailoverMode)
SELECTOR_STRATEGIES = ("random", "round_robin", "least_connections")

Reader = Callable[[str, Any], Any]  # (option name, given value) -> the checked value


@dataclass(frozen=True)
class Seconds:
    """A duration in seconds, at least ``minimum``: below it a monitor would probe thousands of times a
    second (and never see an answer in time), a timeout would expire before any network round trip, a
    credential would be fetched again for every connection. ``allow_zero`` for an age, not a period."""

    minimum: float
    allow_zero: bool = False

    def __call__(self, name: str, value: Any) -> float:
        if isinstance(value, bool):  # float(True) is 1.0: timeout=True is a mistake, not one second
            raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not self.allow_zero):
            kind = "non-negative" if self.allow_zero else "positive"
            raise ConfigurationError(f"{name} must be a {kind}, finite number of seconds, not {value!r}")
        if seconds < self.minimum:
            raise ConfigurationError(f"{name} must be at least {self.minimum:g} s, not {value!r}")
        return seconds


@dataclass(frozen=True)
class Choice:
    """One of ``accepted`` (case-insensitive; ``-`` read as ``_`` when ``dashes``)."""

    accepted: tuple[str, ...]
    dashes: bool = False

    def __call__(self, name: str, value: Any) -> str:
        text = str(value).strip().lower()
        if self.dashes:
            text = text.replace("-", "_")
        if text not in self.accepted:
            raise ConfigurationError(f"{name} must be one of {', '.join(self.accepted)}, not {value!r}")
        return text


def read_port(name: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(f"{name} must be an integer from 1 to 65535, not {value!r}") from None
    if not 0 < port < 65536 or isinstance(value, bool) or (isinstance(value, float) and port != value):
        raise ConfigurationError(f"{name} must be an integer from 1 to 65535, not {value!r}")
    return port


def read_flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def read_telemetry(name: str, value: Any) -> bool:
    """``enable_telemetry``: a flag, and when on, the OpenTelemetry API must be installed."""
    on = read_flag(name, value)
    if on and importlib.util.find_spec("opentelemetry") is None:
        raise ConfigurationError(f"{name}=True needs the OpenTelemetry API: pip install 'aurora_async[otel]'")
    return on


def read_count(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}") from None
    if count < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    return count


def read_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
    return value.strip()


def read_names(name: str, value: Any) -> tuple[str, ...]:
    """Instance ids: a comma-separated string (in a DSN) or a sequence of strings; at least one."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"{name} must be instance ids, comma-separated or a list, not {value!r}")
    names = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if not names:
        raise ConfigurationError(f"{name} must name at least one instance id, not {value!r}")
    return names


def read_pattern(name: str, value: Any) -> HostPattern:
    return value if isinstance(value, HostPattern) else HostPattern.parse(str(value))


def read_region_patterns(name: str, value: Any) -> tuple[tuple[str, HostPattern], ...]:
    """``global_cluster_instance_host_patterns``: ``"us-east-1:?.abc.us-east-1.rds.amazonaws.com,
    us-west-2:?.def.us-west-2.rds.amazonaws.com"`` (each pattern optionally with ``:port``), or a
    mapping of region to pattern."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    else:
        parts = value.split(",") if isinstance(value, str) else list(value)
        items = []
        for part in parts:
            region, sep, pattern = str(part).strip().partition(":")
            if not sep or not region or not pattern:
                raise ConfigurationError(
                    f"{name} must be 'region:pattern' items separated by commas, e.g. "
                    f"'us-east-1:?.abc.us-east-1.rds.amazonaws.com', not {value!r}"
                )
            items.append((region.strip(), pattern))
    patterns: dict[str, HostPattern] = {}
    for region, pattern in items:
        try:
            patterns[region] = read_pattern(name, pattern)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{name}, region {region}: {exc}") from None
    return tuple(sorted(patterns.items()))


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def read_region(name: str, value: Any) -> str:
    """an AWS region, e.g. `us-east-1`"""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _REGION.fullmatch(text):
        raise ConfigurationError(f"{name} must be an AWS region such as 'us-east-1', not {value!r}")
    return text


def read_str(name: str, value: Any) -> str:
    return str(value)


def read_as_is(name: str, value: Any) -> Any:
    return value


def read_code(name: str, value: Any) -> str:
    """A code whose accepted values depend on the engine (``wrapper_dialect``: the engine's driver
    knows its dialects, and the configuration checks the code against them)."""
    return str(value).strip().lower()


def _option(default: Any, read: Reader, doc: str, **more: Any) -> Any:
    return field(default=default, metadata={"read": read, "doc": doc}, **more)


@dataclass(frozen=True, kw_only=True)
class Options:
    """aurora_async's own options; durations in seconds. Each field says what it does."""

    # fmt: off
    plugins: tuple[Plugin, ...] = _option(DEFAULT_PLUGINS, read_plugins, "the behaviours this connection runs")
    failover_mode: FailoverMode = _option("strict_writer", Choice(FAILOVER_MODES, dashes=True), "the role a failover looks for (reader endpoint: reader_or_writer)")
    failover_home_region: str | None = _option(None, read_region, "Global Database: the application's home region (default: the host name's, else the global writer's when the connection opened)")
    active_home_failover_mode: GlobalFailoverMode | None = _option(None, Choice(GLOBAL_FAILOVER_MODES, dashes=True), "Global Database: what a failover looks for when the global writer is in the home region (default: from failover_mode)")
    inactive_home_failover_mode: GlobalFailoverMode | None = _option(None, Choice(GLOBAL_FAILOVER_MODES, dashes=True), "Global Database: what a failover looks for when the global writer is in another region (default: from failover_mode)")
    failover_timeout: float = _option(60.0, Seconds(1.0), "how long a failover looks for an instance in its role")
    blue_green_hold_timeout: float = _option(30.0, Seconds(0.1), "bg plugin: the longest a blue/green switchover holds new statements and connects")
    topology_refresh: float = _option(30.0, Seconds(0.01), "topology refresh period at rest (also how long a closed cluster's state is reused)")
    topology_high_refresh: float = _option(0.1, Seconds(0.05), "topology refresh period after a failure")
    topology_high_refresh_period: float = _option(30.0, Seconds(0.05), "how long the fast refresh lasts")
    connect_timeout: float = _option(10.0, Seconds(0.05), "one connection attempt (connect()'s timeout=)")
    resume_timeout: float = _option(30.0, Seconds(0.0, allow_zero=True), "your own connect to a host that accepts TCP but does not answer (a paused Serverless v2 instance resuming) may take this long in all; 0: no wait")
    auxiliary_query_timeout: float = _option(5.0, Seconds(0.05), "role, topology and session-restore queries")
    cluster_instance_host_pattern: HostPattern | None = _option(None, read_pattern, "how an instance id becomes a host ('?' is the id)")
    global_cluster_instance_host_patterns: tuple[tuple[str, HostPattern], ...] = _option((), read_region_patterns, "an Aurora Global Database: each region's instance host pattern ('us-east-1:?.abc.us-east-1.rds.amazonaws.com,us-west-2:...')")
    cluster_id: str | None = _option(None, read_str, "connections with one cluster_id share one cluster")
    wrapper_dialect: str | None = _option(None, read_code, "skip detection: the dialect code to use")
    rds_proxy: bool | None = _option(None, read_flag, "the host is an RDS Proxy: reach the cluster through it only (default: by host name)")
    reader_host_selector_strategy: str = _option("random", Choice(SELECTOR_STRATEGIES), "how a reader is chosen")
    failure_detection_time: float = _option(0.0, Seconds(0.0, allow_zero=True), "host monitoring leaves calls younger than this alone")
    failure_detection_interval: float = _option(0.4, Seconds(0.05), "host monitoring: probe period and probe timeout")
    failure_detection_count: int = _option(3, read_count, "host monitoring: unanswered probes in a row that mean dead")
    monitor_disposal_time: float = _option(60.0, Seconds(0.1), "a host monitor with no connection ends after this")
    iam_region: str | None = _option(None, read_text, "iam: the region tokens are signed for (default: the host's)")
    iam_host: str | None = _option(None, read_text, "iam: the host tokens are signed for (default: the endpoint)")
    iam_port: int | None = _option(None, read_port, "iam: the port tokens are signed for (default: the endpoint's)")
    iam_expiration: float = _option(840.0, Seconds(1.0), "iam: how long a token is reused (they live 900 s)")
    iam_allow_plaintext: bool = _option(False, read_flag, "iam: send tokens without TLS (local testing only)")
    iam_allow_unverified_tls: bool = _option(False, read_flag, "iam: send tokens over TLS that does not verify the server")
    secrets_manager_secret_id: str | None = _option(None, read_text, "aws_secrets_manager: the secret's name or ARN")
    secrets_manager_region: str | None = _option(None, read_text, "aws_secrets_manager: its region (default: the ARN's)")
    secrets_manager_endpoint: str | None = _option(None, read_text, "aws_secrets_manager: a Secrets Manager endpoint URL")
    secrets_manager_secret_username_key: str = _option("username", read_text, "aws_secrets_manager: the user's key")
    secrets_manager_secret_password_key: str = _option("password", read_text, "aws_secrets_manager: the password's key")
    secrets_manager_expiration: float = _option(1800.0, Seconds(1.0), "aws_secrets_manager: how long a secret is reused")
    aws_session: Any = _option(None, read_as_is, "iam, aws_secrets_manager, custom endpoints: an aioboto3.Session to use", repr=False, compare=False)
    # custom endpoints (_custom_endpoint): a cluster-custom- host, or any host named one with custom_endpoint
    custom_endpoint: str | None = _option(None, read_text, "custom endpoint: this host is the custom endpoint of that name (default: a cluster-custom- host's)")
    custom_endpoint_members: tuple[str, ...] | None = _option(None, read_names, "custom endpoint: its member instance ids, given (no RDS API call)")
    custom_endpoint_type: str | None = _option(None, Choice(("reader", "any")), "custom endpoint: READER or ANY (default: the RDS API's answer; ANY with members given)")
    custom_endpoint_region: str | None = _option(None, read_text, "custom endpoint: the RDS API's region (default: the host's)")
    custom_endpoint_api_endpoint: str | None = _option(None, read_text, "custom endpoint: an RDS API endpoint URL")
    custom_endpoint_refresh: float = _option(30.0, Seconds(0.05), "custom endpoint: how often the members are read again")
    custom_endpoint_info_timeout: float = _option(5.0, Seconds(0.05), "custom endpoint: how long connect() waits for the members")
    enable_telemetry: bool = _option(False, read_telemetry, "OpenTelemetry metrics and spans (the 'otel' extra; the application configures the SDK)")
    # fmt: on

    def has(self, plugin: Plugin) -> bool:
        return plugin in self.plugins


READERS: Mapping[str, Reader] = {f.name: f.metadata["read"] for f in fields(Options)}
OPTION_NAMES = frozenset(READERS)
# the shortest duration each option takes ("timeout" is connect()'s name for connect_timeout)
MINIMUM_SECONDS = {name: r.minimum for name, r in READERS.items() if isinstance(r, Seconds)} | {
    "timeout": cast(Seconds, READERS["connect_timeout"]).minimum
}
_UNSET_BY_DEFAULT = frozenset(f.name for f in fields(Options) if f.default is None)


def read_options(values: Mapping[str, Any], host: str) -> Options:
    """Options from ``values`` (names checked by the caller); the failover mode defaults by endpoint."""
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if value is None and name in _UNSET_BY_DEFAULT:
            continue  # None for an option that defaults to None means "not set", as leaving it out does
        kwargs[name] = READERS[name](name, value)
    if "failover_mode" not in kwargs:
        reader_endpoint = classify_host(host).url_type is RdsUrlType.RDS_READER_CLUSTER
        kwargs["failover_mode"] = "reader_or_writer" if reader_endpoint else "strict_writer"
    return Options(**kwargs)


def read_timeout(value: Any) -> float:
    """connect()'s ``timeout=``, the same as ``connect_timeout``."""
    return cast(Seconds, READERS["connect_timeout"])("timeout", value)


@dataclass(frozen=True)
class ClusterSettings:
    """The options that govern what connections to a cluster share (its dialect, topology monitor and
    host monitors). Connections whose settings differ get a cluster each; everything else (plugins,
    failover mode and timeout, reader selection, credentials, TLS, driver arguments) is per connection."""

    wrapper_dialect: str | None
    cluster_instance_host_pattern: HostPattern | None
    global_cluster_instance_host_patterns: tuple[tuple[str, HostPattern], ...]
    topology_refresh: float
    topology_high_refresh: float
    topology_high_refresh_period: float
    auxiliary_query_timeout: float
    failure_detection_time: float
    failure_detection_interval: float
    failure_detection_count: int
    monitor_disposal_time: float
    enable_telemetry: bool
    blue_green_hold_timeout: float

    @classmethod
    def of(cls, options: Options) -> ClusterSettings:
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})
