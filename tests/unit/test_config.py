"""Options parsing, error classification, dialect row handling and exports: no sockets."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async._dialect import aurora_instances, host_builder
from aurora_async._plugins import DEFAULT_PLUGINS
from aurora_async._rds_hosts import HostPattern
from aurora_async._registry import cluster_key
from aurora_async._topology import Role
from aurora_async.postgresql.driver import connect_kwargs, is_connection_error, is_read_only_error

CLUSTER = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"


def test_dsn_and_keywords_are_parsed_once() -> None:
    config = parse(
        f"postgresql://app:s%40cret@{CLUSTER}:5433/shop?plugins=failover,initial_connection"
        "&failover_timeout=12.5&sslmode=require",
        server_settings={"application_name": "x"},
        command_timeout=3,
    )
    assert (config.host, config.port, config.user, config.database) == (CLUSTER, 5433, "app", "shop")
    assert config.password == "s@cret"
    assert config.options.plugins == ("failover", "initial_connection")
    assert config.options.failover_timeout == 12.5
    assert config.options.failover_mode == "strict_writer"
    assert config.dsn == "postgresql:///?sslmode=require"  # the rest goes to asyncpg
    kwargs = connect_kwargs(config.identity, "10.0.0.5", 5433, 3.0)
    assert kwargs["host"] == "10.0.0.5" and kwargs["server_settings"] == {"application_name": "x"}
    assert kwargs["password"] == "s@cret" and kwargs["timeout"] == 3.0
    assert "s@cret" not in repr(config) and "s%40cret" not in repr(config)


def test_defaults() -> None:
    config = parse(host=CLUSTER, user="app")
    assert config.options.plugins == DEFAULT_PLUGINS
    assert config.port == 5432
    reader = parse(host=CLUSTER.replace("cluster-", "cluster-ro-"))
    assert reader.options.failover_mode == "reader_or_writer"
    assert parse(host=CLUSTER, plugins=()).options.plugins == ()
    assert parse(host=CLUSTER, failover_mode="strict-reader").options.failover_mode == "strict_reader"
    assert parse(host=CLUSTER, timeout=3).options.connect_timeout == 3.0
    monitoring = parse(
        f"postgresql://app@{CLUSTER}/db?failure_detection_count=5&failure_detection_time=0"
    ).options
    assert (monitoring.failure_detection_count, monitoring.failure_detection_time) == (5, 0.0)
    assert (config.options.failure_detection_interval, config.options.failure_detection_count) == (0.4, 3)
    assert "host_monitoring" in DEFAULT_PLUGINS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failover_timout": 3}, "unknown option 'failover_timout'"),
        ({"plugins": ("failover", "nope")}, "unknown plugin code 'nope'"),
        ({"plugins": ("iam", "aws_secrets_manager"), "user": "u"}, "both supply the password"),
        ({"plugins": ("iam",)}, "plugin 'iam' needs the database user"),
        ({"plugins": ("iam",), "user": "u", "host": "db.example.com"}, "needs a region: 'db.example.com'"),
        ({"plugins": ("iam",), "user": "u"}, "needs TLS that verifies the server; this connection has TLS"),
        ({"plugins": ("iam",), "user": "u", "ssl": "prefer"}, "needs TLS that verifies the server"),
        ({"plugins": ("iam",), "user": "u", "ssl": "require"}, "has TLS without certificate verification"),
        ({"plugins": ("iam",), "user": "u", "ssl": "verify-ca"}, "verifying the CA but not the host"),
        ({"plugins": ("iam",), "user": "u", "ssl": "disable", "iam_allow_unverified_tls": True}, "no TLS"),
        (
            {"plugins": ("iam",), "user": "u", "ssl": "verify-full", "password": "x"},
            "password given together",
        ),
        ({"plugins": ("iam",), "iam_port": 0}, "iam_port must be an integer"),
        ({"plugins": ("iam",), "iam_allow_plaintext": "maybe"}, "iam_allow_plaintext must be true or false"),
        ({"plugins": ("aws_secrets_manager",)}, "needs secrets_manager_secret_id"),
        ({"plugins": ("aws_secrets_manager",), "secrets_manager_secret_id": "app"}, "needs a region"),
        ({"secrets_manager_secret_id": ""}, "secrets_manager_secret_id must be a non-empty string"),
        ({"plugins": 3}, "plugins must be a tuple"),
        ({"failover_mode": "writer"}, "failover_mode must be one of strict_writer, strict_reader"),
        ({"failover_timeout": 0}, "failover_timeout must be a positive, finite number"),
        ({"failover_timeout": "soon"}, "failover_timeout must be a number of seconds"),
        ({"topology_refresh": float("inf")}, "topology_refresh must be a positive, finite"),
        ({"wrapper_dialect": "oracle"}, "wrapper_dialect must be one of aurora-pg"),
        ({"reader_host_selector_strategy": "fastest"}, "must be one of random, round_robin"),
        ({"cluster_instance_host_pattern": "10.0.0.1"}, "has no '\\?'"),
        ({"cluster_instance_host_pattern": "?.proxy-abc.us-east-1.rds.amazonaws.com"}, "RDS Proxy"),
        ({"cluster_instance_host_pattern": "[::1]?"}, "IPv6"),
        ({"port": "x"}, "port must be an integer"),
        ({"host": "a,b"}, "host must be one host name"),
        ({"failure_detection_count": 0}, "failure_detection_count must be a whole number of at least 1"),
        ({"failure_detection_count": "2.5"}, "failure_detection_count must be a whole number"),
        ({"failure_detection_count": True}, "failure_detection_count must be a whole number"),
        ({"failure_detection_time": -1}, "failure_detection_time must be a non-negative, finite"),
        ({"failure_detection_interval": 0}, "failure_detection_interval must be a positive"),
        ({"monitor_disposal_time": "later"}, "monitor_disposal_time must be a number of seconds"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("host", CLUSTER)
    with pytest.raises(ConfigurationError, match=message):
        parse(**kwargs)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("oracle://a@b/c", "scheme must be postgresql://, postgres:// or mysql://"),
        ("postgresql://u@h1,h2/db", "several hosts"),
        ("postgresql://u@[::1]:5432/db", "IPv6"),
        ("postgresql:///db", "no host given"),
    ],
)
def test_bad_dsns_are_named(dsn: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse(dsn)


def test_a_mangled_dsn_never_shows_its_password_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse("app:S3cret-pw@db.example.com://x")
    assert "s3cret" not in str(caught.value).lower() and "something else" in str(caught.value)
    with pytest.raises(ConfigurationError, match="not 'oracle'://"):
        parse("oracle://a@b/c")


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        aurora_async.connect(host=CLUSTER, failover_mode="nope")


def test_public_surface() -> None:
    assert set(aurora_async.__all__) == {
        "AuroraConnection", "AuroraError", "AuroraTransaction", "ConfigurationError", "FailoverError",
        "AuroraMySQLConnection", "AuroraMySQLCursor",
        "FailoverFailedError", "FailoverMode", "FailoverSuccessError", "Instance", "Options", "Role",
        "Topology", "TransactionResolutionUnknownError", "__version__", "connect", "connect_raw",
        "CredentialsError", "IamAuthError", "SecretsManagerError", "RetryState", "attempts_of",
        "retry_on_failover", "AuroraPool", "create_pool", "ReadWriteSplittingError",
        "RawConnector", "raw_connector", "data_api", "CustomEndpointError",
        "events", "health", "Health", "Event", "EventStream", "FailoverStarted", "FailoverSucceeded",
        "FailoverFailed", "WriterSearchFinished", "TopologyRefreshed", "WriterChanged", "HostDown", "HostUp",
        "IamTokenGenerated", "SecretFetched", "PoolConnectionRetired",
    }  # fmt: skip
    assert aurora_async.data_api.DataApiError.__module__ == "aurora_async.data_api"
    assert issubclass(aurora_async.data_api.DataApiError, aurora_async.AuroraError)
    assert issubclass(aurora_async.IamAuthError, aurora_async.CredentialsError)
    assert issubclass(aurora_async.SecretsManagerError, aurora_async.CredentialsError)
    assert issubclass(aurora_async.CredentialsError, aurora_async.AuroraError)
    assert aurora_async.FailoverSuccessError.__module__ == "aurora_async"
    assert issubclass(aurora_async.FailoverSuccessError, aurora_async.FailoverError)
    assert issubclass(aurora_async.FailoverError, aurora_async.AuroraError)


class _Closed:
    def is_closed(self) -> bool:
        return True


class _Open:
    def is_closed(self) -> bool:
        return False


def _pg_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    error: asyncpg.PostgresError = cls.new({"M": "x", "C": cls.sqlstate})
    return error


def test_error_classification() -> None:
    assert is_connection_error(ConnectionResetError(), None)
    assert is_connection_error(asyncpg.ConnectionDoesNotExistError("gone"), None)
    assert is_connection_error(_pg_error(asyncpg.AdminShutdownError), None)
    assert is_connection_error(_pg_error(asyncpg.CannotConnectNowError), None)
    assert is_connection_error(_pg_error(asyncpg.TooManyConnectionsError), None)
    assert is_connection_error(asyncpg.InterfaceError("connection is closed"), _Closed())  # type: ignore[arg-type]
    assert not is_connection_error(asyncpg.InterfaceError("misuse"), _Open())  # type: ignore[arg-type]
    assert not is_connection_error(TimeoutError(), None)  # a slow query is not a dead connection
    assert not is_connection_error(_pg_error(asyncpg.UniqueViolationError), None)
    assert not is_connection_error(_pg_error(asyncpg.ReadOnlySQLTransactionError), None)
    assert is_read_only_error(_pg_error(asyncpg.ReadOnlySQLTransactionError))


def test_aurora_rows_become_instances() -> None:
    build = host_builder(HostPattern.parse("10.1.2.?:6000"), "ignored", 5432)
    now = datetime.now(UTC)
    rows = [
        ("11", True, 1.0, 0.0, now - timedelta(seconds=5)),
        ("12", False, 1.0, 12.0, now),
        ("13", True, 1.0, 0.0, now),  # two writers: the most recently updated wins
        (None, False, 0.0, 0.0, now),  # garbage is skipped
    ]
    instances = aurora_instances(rows, build)
    assert instances is not None
    by_id = {i.instance_id: i for i in instances}
    assert set(by_id) == {"11", "12", "13"}
    assert by_id["13"].role is Role.WRITER and by_id["11"].role is Role.READER
    assert by_id["12"].endpoint == "10.1.2.12:6000" and by_id["12"].replica_lag_ms == 12.0
    assert aurora_instances([("12", False, 1.0, 0.0, now)], build) is None  # no writer: unusable


def test_instance_hosts_come_from_the_cluster_domain() -> None:
    build = host_builder(None, CLUSTER, 5432)
    assert build("db-1", None, None) == ("db-1.abc123.us-east-1.rds.amazonaws.com", 5432)
    plain = host_builder(None, "10.0.0.1", 5432)
    assert plain("x", "x.example.com", 6000) == ("x.example.com", 6000)
    with pytest.raises(LookupError):
        plain("x", None, None)


def test_cluster_identity_ignores_host_case_endpoint_kind_and_who_connects() -> None:
    writer = parse(f"postgresql://app@{CLUSTER}/db")
    shouting = parse(f"postgresql://app@{CLUSTER.upper()}/db")
    reader = parse(f"postgresql://app@{CLUSTER.replace('.cluster-', '.cluster-ro-')}/db")
    # who connects, and how, is each connection's own: the cluster is shared
    others = [
        parse(f"postgresql://admin:pw@{CLUSTER}/other?sslmode=verify-full"),
        parse(host=CLUSTER, user="app", server_settings={"search_path": "t"}, failover_timeout=3),
        parse(host=CLUSTER, user="app", plugins=("failover",), failover_mode="reader_or_writer"),
    ]
    assert cluster_key(writer) == cluster_key(shouting) == cluster_key(reader)
    assert all(cluster_key(other) == cluster_key(writer) for other in others)
    # what the shared background work does is the cluster's: other settings, another cluster
    assert cluster_key(parse(host=CLUSTER, topology_refresh=5)) != cluster_key(writer)
    assert cluster_key(parse(host=CLUSTER, failure_detection_count=5)) != cluster_key(writer)


def test_credentials_options() -> None:
    iam = parse(host=CLUSTER, user="app", plugins=("iam",), ssl="verify-full").options
    assert iam.iam_expiration == 840.0 and iam.iam_allow_plaintext is False
    local = parse(
        "postgresql://app@127.0.0.1:5432/db?plugins=iam&iam_region=eu-west-1&iam_allow_plaintext=true"
        "&iam_host=db.internal&iam_port=6543"
    ).options
    assert (local.iam_region, local.iam_host, local.iam_port, local.iam_allow_plaintext) == (
        "eu-west-1",
        "db.internal",
        6543,
        True,
    )
    arn = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:app-AbCdEf"
    secret = parse(host=CLUSTER, plugins=("aws_secrets_manager",), secrets_manager_secret_id=arn).options
    from aurora_async._credential_options import secret_region

    assert secret_region(secret) == "ap-south-1"
    assert secret.secrets_manager_secret_username_key == "username"
    config = parse(host=CLUSTER, user="app", plugins=("iam",), ssl="verify-full", aws_session=object())
    assert "aws_session" not in repr(config)


def test_credential_plugins_without_aioboto3_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "aioboto3" else real(name))
    with pytest.raises(ConfigurationError, match=r"needs aioboto3: pip install 'aurora_async\[aws\]'"):
        parse(host=CLUSTER, plugins=("aws_secrets_manager",), secrets_manager_secret_id="x")


@pytest.mark.parametrize("dsn", [12345, b"postgresql://app@db.example.com/app", ["postgresql://x"], 1.5])
def test_a_dsn_that_is_not_a_string_is_a_configuration_error(dsn: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"dsn must be a str .*not {type(dsn).__name__}"):
        aurora_async.connect(dsn=dsn)
    with pytest.raises(ConfigurationError, match="dsn must be a str"):
        aurora_async.connect(dsn, engine="mysql")
    with pytest.raises(ConfigurationError, match="dsn must be a str"):
        parse(dsn, host=CLUSTER)


NUMERIC_OPTIONS = [
    "failover_timeout", "topology_refresh", "topology_high_refresh", "topology_high_refresh_period",
    "connect_timeout", "auxiliary_query_timeout", "failure_detection_interval", "monitor_disposal_time",
    "iam_expiration", "secrets_manager_expiration", "failure_detection_time", "failure_detection_count",
    "iam_port", "port", "timeout",
]  # fmt: skip


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("name", NUMERIC_OPTIONS)
def test_a_bool_is_no_number(name: str, value: bool) -> None:
    """``timeout=True`` was one second, ``failure_detection_time=False`` zero."""
    with pytest.raises(ConfigurationError, match=f"^{name} must be .*, not {value}"):
        parse(None, host=CLUSTER, **{name: value})


@pytest.mark.parametrize(
    ("name", "value", "minimum"),
    [
        ("failure_detection_interval", 0.0001, "0.05"),  # was 2,950 probes in 3 s, monitoring disabled
        ("topology_high_refresh", 0.001, "0.05"),
        ("topology_refresh", 0.001, "0.01"),
        ("failover_timeout", 0.5, "1"),
        ("connect_timeout", 0.01, "0.05"),
        ("timeout", 0.01, "0.05"),
        ("auxiliary_query_timeout", 0.001, "0.05"),
        ("monitor_disposal_time", 0.05, "0.1"),
        ("iam_expiration", 0.5, "1"),
        ("secrets_manager_expiration", 0.5, "1"),
    ],
)
def test_durations_have_a_lower_bound(name: str, value: float, minimum: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{name} must be at least {minimum} s, not {value}"):
        parse(None, host=CLUSTER, **{name: value})
    if name != "timeout":  # (asyncpg's keyword, not a DSN parameter)
        with pytest.raises(ConfigurationError, match=rf"^{name} must be at least {minimum} s"):
            parse(f"postgresql://app@{CLUSTER}/db?{name}={value}")
    parse(None, host=CLUSTER, **{name: float(minimum)})  # the bound itself is accepted


def test_every_duration_has_a_lower_bound_that_its_default_meets() -> None:
    from aurora_async._options import MINIMUM_SECONDS

    durations = {f.name for f in dataclasses.fields(aurora_async.Options) if f.type == "float"}
    assert set(MINIMUM_SECONDS) == {*durations, "timeout"}
    defaults = aurora_async.Options()
    for name in durations - {"failure_detection_time", "resume_timeout"}:
        assert getattr(defaults, name) >= MINIMUM_SECONDS[name] > 0, name
    assert MINIMUM_SECONDS["timeout"] == MINIMUM_SECONDS["connect_timeout"]
    assert MINIMUM_SECONDS["topology_refresh"] <= 0.01  # tests/integration/test_failover.py uses it
    # failure_detection_time (how old a call must be before monitoring acts) may be zero
    assert parse(host=CLUSTER, failure_detection_time=0).options.failure_detection_time == 0.0
    # so may resume_timeout (0: never wait for a resuming instance beyond connect_timeout)
    assert defaults.resume_timeout == 30.0
    assert parse(host=CLUSTER, resume_timeout=0).identity.resume_timeout == 0.0


@pytest.mark.parametrize(
    ("parameter", "meant"),
    [
        ("failovr_timeout", "failover_timeout"),  # was sent to the server as a setting
        ("failover_timout", "failover_timeout"),
        ("Failover_Timeout", "failover_timeout"),
        ("failover-mode", "failover_mode"),
        ("topology_refresh_ms", "topology_refresh"),
        ("failure_detection_intervall", "failure_detection_interval"),
        ("plugin", "plugins"),
        ("clusterinstancehostpattern", "cluster_instance_host_pattern"),
        ("secret_manager_secret_id", "secrets_manager_secret_id"),
        ("wrapper_dialects", "wrapper_dialect"),
    ],
)
def test_a_mistyped_option_in_a_dsn_is_named(parameter: str, meant: str) -> None:
    message = rf"unknown parameter '{parameter}'.*did you mean '{meant}'\?"
    with pytest.raises(ConfigurationError, match=message):
        parse(f"postgresql://app@{CLUSTER}/db?sslmode=require&{parameter}=3")
    with pytest.raises(ConfigurationError, match=rf"did you mean '{meant}'\?"):
        parse(f"mysql://app@{CLUSTER}/db?{parameter}=3")


# server settings (a sample; test_dsn_settings.py checks every one the real server knows) and asyncpg's
# own DSN parameters, some of them close to an option's name
NOT_OURS = [
    "application_name", "search_path", "statement_timeout", "lock_timeout", "archive_timeout",
    "checkpoint_timeout", "idle_in_transaction_session_timeout", "cluster_name", "archive_mode",
    "TimeZone", "work_mem", "pg_stat_statements.track", "auto_explain.log_min_duration", "myapp.tenant",
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs", "krbsrvname", "gsslib",
    "passfile", "service",
]  # fmt: skip


@pytest.mark.parametrize("parameter", NOT_OURS)
def test_other_dsn_parameters_go_to_asyncpg(parameter: str) -> None:
    config = parse(f"postgresql://app@{CLUSTER}/db?{parameter}=x")
    assert config.dsn == f"postgresql:///?{parameter}=x"


def test_every_option_has_a_reader_a_doc_line_and_a_place_in_the_docs() -> None:
    """The option table is the one list of options: each says how it is read and what it does, the
    generated options page lists it with its default and doc line, and a page of the documentation
    names it in its prose (a new option cannot be added without all three)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location("docs_options", root / "scripts" / "docs_options.py")
    assert spec is not None and spec.loader is not None
    docs_options = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs_options)
    table = docs_options.render_options_table()
    assert docs_options.MARKER in (root / "docs" / "options.md").read_text()  # where the table goes
    prose = "\n".join(p.read_text() for p in sorted((root / "docs").glob("*.md")))
    for option in dataclasses.fields(aurora_async.Options):
        assert callable(option.metadata["read"]), option.name
        assert len(option.metadata["doc"]) > 10, option.name
        row = re.search(rf"^\| .*`{option.name}` \|(.*)$", table, re.M)
        assert row is not None and option.metadata["doc"].replace("|", "\\|") in row[1], option.name
        assert re.search(rf"`{option.name}[`=]", prose), f"no page of docs/ names {option.name}"


def test_a_plugin_code_is_read_into_the_plugin_it_names() -> None:
    from aurora_async._plugins import Plugin

    config = parse(host=CLUSTER, plugins="failover, read_write_splitting")
    assert config.options.plugins == (Plugin.FAILOVER, Plugin.READ_WRITE_SPLITTING)
    assert config.options.has(Plugin.READ_WRITE_SPLITTING) and not config.options.has(Plugin.HOST_MONITORING)
    assert repr(config.options.plugins) == "('failover', 'read_write_splitting')"


def test_a_global_writer_endpoint_names_no_region_to_sign_for() -> None:
    """``<name>.global-<id>.global.rds.amazonaws.com``: the label where a region goes is "global". An IAM
    token signed for "global" would be refused; the connect says to give the region instead."""
    glob = "orders.global-abc123.global.rds.amazonaws.com"
    with pytest.raises(ConfigurationError, match="Global Database writer endpoint.*iam_region"):
        parse(host=glob, user="app", plugins=("iam",), ssl="verify-full")
    signed = parse(host=glob, user="app", plugins=("iam",), ssl="verify-full", iam_region="eu-west-1")
    assert signed.options.iam_region == "eu-west-1"
