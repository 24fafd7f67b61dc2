"""Property-based tests (hypothesis) of the code that takes outside input: DSN and option parsing,
host names and instance host patterns, and the rows of the topology queries. No sockets.

Complements ``test_config.py`` and ``test_rds_hosts.py``, which pin down chosen examples: these check
what must hold for *every* input (round trips, only ``ConfigurationError`` for garbage, no password in
any error, exactly one writer in any topology).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import string
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aurora_async import ConfigurationError, Options
from aurora_async._config import _ADDRESS_KEYWORDS, Config, parse
from aurora_async._dialect import aurora_instances, host_builder, multi_az_instance_name
from aurora_async._options import FAILOVER_MODES, MINIMUM_SECONDS, OPTION_NAMES, SELECTOR_STRATEGIES
from aurora_async._plugins import Plugin
from aurora_async._rds_hosts import HostPattern, RdsUrlType, classify_host
from aurora_async._registry import cluster_key
from aurora_async._topology import Instance, Role, with_writer
from aurora_async.postgresql.dialects import MultiAzPgDialect
from aurora_async.postgresql.driver import POSTGRESQL

# examples per property: the whole file runs in a few seconds; no example database (nothing written)
FAST = settings(max_examples=50, deadline=None, database=None)
QUICK = settings(max_examples=25, deadline=None, database=None)
ROWS = settings(max_examples=120, deadline=None, database=None)

# -- strategies ------------------------------------------------------------------------------------------

LOWER, ALNUM = string.ascii_lowercase, string.ascii_lowercase + string.digits
LABEL = st.builds(
    "{}{}{}".format, st.sampled_from(LOWER), st.text(ALNUM + "-", max_size=12), st.sampled_from(ALNUM)
)
HOST_NAMES = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
IPV4 = st.ip_addresses(v=4).map(str)
PORTS = st.integers(1, 65535)
# any text a user, database or password might hold (no lone surrogates: they cannot be UTF-8 encoded)
TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=24)
# a password nothing else in a test contains by accident: 12 to 32 hex digits
SECRETS = st.binary(min_size=6, max_size=16).map(lambda b: "pw" + b.hex())

CLUSTER_ID = st.text(ALNUM, min_size=1, max_size=14)
REGIONS = st.builds(
    "{}{}-{}-{}".format,
    st.sampled_from(["us", "eu", "ap", "ca", "sa", "me", "af", "il", "mx", "cn"]),
    st.sampled_from(["", "-gov", "-iso", "-isob"]),
    st.sampled_from(["east", "west", "north", "south", "central", "northeast", "southeast"]),
    st.integers(1, 9),
)
# (format of the domain from cluster id and region, as the four RDS partitions spell it)
PARTITIONS = [
    "{id}.{region}.rds.amazonaws.com",
    "{id}.rds.{region}.amazonaws.com.cn",
    "{id}.{region}.rds.amazonaws.com.cn",
    "{id}.rds.{region}.amazonaws.com",
    "{id}.rds.{region}.c2s.ic.gov",
    "{id}.rds.{region}.sc2s.sgov.gov",
]
CLUSTER_PREFIXES = {
    "cluster-": RdsUrlType.RDS_WRITER_CLUSTER,
    "cluster-ro-": RdsUrlType.RDS_READER_CLUSTER,
    "cluster-custom-": RdsUrlType.RDS_CUSTOM_CLUSTER,
}
# instance ids as RDS allows them: a letter, then letters, digits and single hyphens
INSTANCE_IDS = st.builds(
    "{}{}".format,
    st.sampled_from(LOWER),
    st.lists(st.tuples(st.sampled_from(["", "-"]), st.sampled_from(ALNUM)).map("".join), max_size=10).map(
        "".join
    ),
)


@st.composite
def rds_cluster_hosts(draw: st.DrawFn) -> tuple[str, RdsUrlType, str, str, str]:
    """(host, type, cluster name, domain, region) of a cluster endpoint in any partition."""
    name = draw(st.lists(LABEL, min_size=1, max_size=2).map(".".join))
    prefix = draw(st.sampled_from(sorted(CLUSTER_PREFIXES)))
    region = draw(REGIONS)
    domain = draw(st.sampled_from(PARTITIONS)).format(id=draw(CLUSTER_ID), region=region)
    return f"{name}.{prefix}{domain}", CLUSTER_PREFIXES[prefix], name, domain, region


def mixed_case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.upper() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False)
    )


HOSTS = st.one_of(HOST_NAMES, IPV4, rds_cluster_hosts().map(lambda h: h[0]))


# -- DSN and keyword parsing: valid input round-trips ----------------------------------------------------

# option -> strategy of (value as given, value as parsed); the iam / aws_secrets_manager plugins are left
# out (they need aioboto3 and AWS settings, which test_config.py covers)
PLAIN_PLUGINS = sorted(set(Plugin) - {Plugin.IAM, Plugin.AWS_SECRETS_MANAGER})
SECONDS = st.floats(min_value=0.001, max_value=1e7, allow_nan=False, allow_infinity=False)


def _same(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    return strategy.map(lambda v: (v, v))


def _spelled(choices: Iterable[str]) -> st.SearchStrategy[tuple[str, str]]:
    """A choice as users spell it (any case, surrounding blanks) and as it is parsed."""
    return st.tuples(st.sampled_from(sorted(choices)), st.booleans(), st.booleans()).map(
        lambda t: ((t[0].upper() if t[1] else t[0]) + (" " if t[2] else ""), t[0])
    )


def _pattern() -> st.SearchStrategy[tuple[str, HostPattern]]:
    return st.tuples(HOST_NAMES, st.none() | PORTS).map(
        lambda t: (
            f"?.{t[0]}" + (f":{t[1]}" if t[1] is not None else ""),
            HostPattern(f"?.{t[0]}", t[1]),
        )
    )


def _seconds_from(name: str) -> st.SearchStrategy[float]:
    """Durations ``name`` accepts: from its minimum (MINIMUM_SECONDS) up."""
    return st.floats(min_value=MINIMUM_SECONDS[name], max_value=1e7, allow_nan=False, allow_infinity=False)


OPTION_VALUES: dict[str, st.SearchStrategy[tuple[Any, Any]]] = {
    **{
        name: _same(_seconds_from(name))
        for name in (
            "failover_timeout",
            "topology_refresh",
            "topology_high_refresh",
            "topology_high_refresh_period",
            "connect_timeout",
            "auxiliary_query_timeout",
            "failure_detection_interval",
            "monitor_disposal_time",
        )
    },
    "failure_detection_time": _same(st.just(0.0) | SECONDS),
    "failure_detection_count": _same(st.integers(1, 10**6)),
    "plugins": st.lists(st.sampled_from(PLAIN_PLUGINS), unique=True).map(lambda p: (p, tuple(p))),
    "failover_mode": st.one_of(
        _spelled(FAILOVER_MODES), st.sampled_from(FAILOVER_MODES).map(lambda m: (m.replace("_", "-"), m))
    ),
    "wrapper_dialect": _spelled(tuple(POSTGRESQL.dialects)),
    "reader_host_selector_strategy": _spelled(SELECTOR_STRATEGIES),
    "iam_allow_plaintext": st.sampled_from(
        [("true", True), ("1", True), ("YES", True), ("On", True), ("false", False), ("0", False)]
        + [("no", False), (" OFF ", False)]
    ),
    "cluster_id": _same(TEXT),
    "cluster_instance_host_pattern": _pattern(),
}


def _query_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


@st.composite
def valid_settings(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "host": draw(HOSTS),
        "port": draw(PORTS),
        "user": draw(TEXT),
        "password": draw(SECRETS) + draw(TEXT),  # any text, with a part nothing else contains
        "database": draw(TEXT),
        "options": draw(
            st.dictionaries(st.sampled_from(sorted(OPTION_VALUES)), st.none(), max_size=6).flatmap(
                lambda names: st.fixed_dictionaries({n: OPTION_VALUES[n] for n in names})
            )
        ),
        "driver": draw(st.dictionaries(st.sampled_from(["sslmode", "application_name"]), TEXT, max_size=2)),
    }


def _assert_parsed(config: Config, given_settings: dict[str, Any]) -> None:
    assert config.host == given_settings["host"]
    assert config.port == given_settings["port"]
    assert config.user == given_settings["user"]
    assert config.password == given_settings["password"]
    assert config.database == given_settings["database"]
    for name, (_, parsed) in given_settings["options"].items():
        assert getattr(config.options, name) == parsed, name
    untouched = OPTION_NAMES - set(given_settings["options"]) - {"failover_mode", "aws_session"}
    defaults = Options()
    for name in untouched:
        assert getattr(config.options, name) == getattr(defaults, name), name
    assert given_settings["password"] not in repr(config)


@FAST
@given(valid_settings())
def test_a_dsn_round_trips_every_value(s: dict[str, Any]) -> None:
    query = {name: _query_value(given_value) for name, (given_value, _) in s["options"].items()}
    query.update(s["driver"])
    dsn = (
        f"postgresql://{quote(s['user'], safe='')}:{quote(s['password'], safe='')}@{s['host']}:{s['port']}"
        f"/{quote(s['database'], safe='')}?{urlencode(query)}"
    )
    config = parse(dsn)
    _assert_parsed(config, s)
    if s["driver"]:  # what is not ours goes on to asyncpg, and only that
        assert config.dsn == f"postgresql:///?{urlencode(s['driver'])}"
    else:
        assert config.dsn is None


@FAST
@given(valid_settings(), st.booleans())
def test_keywords_round_trip_every_value(s: dict[str, Any], port_as_text: bool) -> None:
    options = {name: given_value for name, (given_value, _) in s["options"].items()}
    config = parse(
        host=s["host"],
        port=str(s["port"]) if port_as_text else s["port"],
        user=s["user"],
        password=s["password"],
        database=s["database"],
        **options,
    )
    _assert_parsed(config, s)
    assert config.dsn is None


@FAST
@given(valid_settings(), valid_settings())
def test_keywords_win_over_the_dsn(in_dsn: dict[str, Any], in_keywords: dict[str, Any]) -> None:
    query = {name: _query_value(v) for name, (v, _) in in_dsn["options"].items()}
    dsn = (
        f"postgresql://{quote(in_dsn['user'], safe='')}:{quote(in_dsn['password'], safe='')}"
        f"@{in_dsn['host']}:{in_dsn['port']}/{quote(in_dsn['database'], safe='')}?{urlencode(query)}"
    )
    keywords = {name: v for name, (v, _) in in_keywords["options"].items()}
    config = parse(dsn, host=in_keywords["host"], port=in_keywords["port"], **keywords)
    assert (config.host, config.port) == (in_keywords["host"], in_keywords["port"])
    assert (config.user, config.password, config.database) == (
        in_dsn["user"],
        in_dsn["password"],
        in_dsn["database"],
    )
    for name, (_, parsed) in in_dsn["options"].items():
        if name not in in_keywords["options"]:
            assert getattr(config.options, name) == parsed, name
    for name, (_, parsed) in in_keywords["options"].items():
        assert getattr(config.options, name) == parsed, name


# -- DSN and keyword parsing: garbage is a ConfigurationError that keeps the password to itself --------


def _not_an_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


def _not_a_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


JUNK_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
BAD_PORTS = st.one_of(
    st.integers().filter(lambda p: not 0 < p < 65536),
    st.integers(1, 65535).map(str).map(lambda p: p + "x"),
    st.floats().filter(lambda f: not (f.is_integer() and 0 < f < 65536)),
    st.booleans(),
    JUNK_TEXT.filter(_not_an_int),
    st.lists(st.integers(), max_size=2),
)
BAD_SECONDS = st.one_of(
    st.booleans(),  # float(True) is 1.0, but a flag is no duration
    st.floats(max_value=0.0),  # zero, negative, -inf
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(max_value=0),
    st.integers(min_value=2**1024),  # too large for a float
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "", "soon", "10s"]),
    JUNK_TEXT.filter(_not_a_float),
    st.lists(st.floats(), max_size=2),
)
BAD_NON_NEGATIVE_SECONDS = st.one_of(
    st.booleans(),
    st.floats(max_value=-1e-9),
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(min_value=2**1024),
    JUNK_TEXT.filter(_not_a_float),
)
BAD_COUNTS = st.one_of(
    st.integers(max_value=0), st.booleans(), JUNK_TEXT.filter(_not_an_int), st.floats().map(str)
)
FLAGS = {"1", "true", "yes", "on", "0", "false", "no", "off"}
BAD_FLAGS = st.one_of(
    JUNK_TEXT.filter(lambda t: t.strip().lower() not in FLAGS),
    st.integers().filter(lambda i: i not in (0, 1)),
)
BAD_PLUGIN_NAMES = JUNK_TEXT.filter(lambda t: "," not in t and t.strip() and t.strip() not in set(Plugin))
KNOWN_KEYWORDS = OPTION_NAMES | POSTGRESQL.connect_keywords | _ADDRESS_KEYWORDS | {"engine"}


def _bad_choice(accepted: Iterable[str]) -> st.SearchStrategy[str]:
    normal = {a.replace("-", "_") for a in accepted} | set(accepted)
    return JUNK_TEXT.filter(lambda t: t.strip().lower().replace("-", "_") not in normal)


GARBAGE: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.tuples(st.sampled_from(["port", "iam_port"]), BAD_PORTS),
    st.tuples(
        st.sampled_from(
            ["failover_timeout", "topology_refresh", "connect_timeout", "timeout", "iam_expiration"]
            + ["failure_detection_interval", "auxiliary_query_timeout", "monitor_disposal_time"]
        ),
        BAD_SECONDS,
    ),
    st.sampled_from(sorted(n for n, m in MINIMUM_SECONDS.items() if m > 0)).flatmap(  # under the minimum
        lambda name: st.tuples(
            st.just(name), st.floats(min_value=0.0, max_value=MINIMUM_SECONDS[name], exclude_max=True)
        )
    ),
    st.tuples(st.just("failure_detection_time"), BAD_NON_NEGATIVE_SECONDS),
    st.tuples(st.just("failure_detection_count"), BAD_COUNTS),
    st.tuples(st.just("iam_allow_plaintext"), BAD_FLAGS),
    st.tuples(
        st.just("plugins"),
        st.one_of(
            st.lists(BAD_PLUGIN_NAMES, min_size=1, max_size=2).map(",".join),
            st.tuples(st.sampled_from(PLAIN_PLUGINS), BAD_PLUGIN_NAMES),
            st.integers(),
            st.dictionaries(TEXT, TEXT, max_size=1),
        ),
    ),
    st.tuples(st.just("failover_mode"), _bad_choice(FAILOVER_MODES)),
    st.tuples(st.just("wrapper_dialect"), _bad_choice(tuple(POSTGRESQL.dialects))),
    st.tuples(st.just("reader_host_selector_strategy"), _bad_choice(SELECTOR_STRATEGIES)),
    st.tuples(st.just("cluster_instance_host_pattern"), JUNK_TEXT.filter(lambda t: "?" not in t)),
    st.tuples(st.just("cluster_instance_host_pattern"), st.sampled_from(["? .x", "[?]", "?:0", "?:+1"])),
    st.tuples(  # a host list, or a '/' that does not start a Unix socket path (which is a host)
        st.just("host"),
        st.tuples(JUNK_TEXT, st.sampled_from(",/"), JUNK_TEXT)
        .map("".join)
        .filter(lambda h: "," in h or not h.startswith("/")),
    ),
    st.tuples(st.just("host"), st.sampled_from(["", 42, ["a", "b"]])),
    st.tuples(st.text(min_size=1, max_size=20).filter(lambda n: n not in KNOWN_KEYWORDS), TEXT),
)


def _assert_secret_kept(error: BaseException, secret: str) -> None:
    assert secret not in str(error)
    assert secret not in repr(error)
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            assert secret not in str(linked) and secret not in repr(linked)


@FAST
@example(("port", True), "pw0123456789ab", "host")  # was port 1
@example(("port", 5432.5), "pw0123456789ab", "host")  # was port 5432
@example(("port", float("inf")), "pw0123456789ab", "host")  # was OverflowError
@example(("failover_timeout", 10**400), "pw0123456789ab", "dsn")  # was OverflowError
@given(GARBAGE, SECRETS, st.sampled_from(["host", "dsn"]))
def test_garbage_keywords_raise_configuration_error_without_the_password(
    garbage: tuple[str, Any], secret: str, password_in: str
) -> None:
    name, value = garbage
    assume(secret not in repr(value))
    kwargs: dict[str, Any] = {"host": "db.example.com", name: value}
    dsn = None
    if password_in == "dsn":
        dsn = f"postgresql://app:{secret}@db.example.com:5432/app"
        if name != "host":
            del kwargs["host"]
    else:
        kwargs.setdefault("password", secret)
    with pytest.raises(ConfigurationError) as raised:
        parse(dsn, **kwargs)
    assert type(raised.value) is ConfigurationError
    _assert_secret_kept(raised.value, secret)


STRING_GARBAGE = GARBAGE.filter(lambda g: isinstance(g[1], str) and g[0] in OPTION_NAMES)


@FAST
@given(STRING_GARBAGE, SECRETS)
def test_garbage_in_the_dsn_query_raises_configuration_error_without_the_password(
    garbage: tuple[str, str], secret: str
) -> None:
    name, value = garbage
    assume(secret not in value)
    dsn = f"postgresql://app:{secret}@db.example.com:5432/app?{urlencode({name: value})}"
    with pytest.raises(ConfigurationError) as raised:
        parse(dsn)
    _assert_secret_kept(raised.value, secret)


@FAST
@given(BAD_PORTS.filter(lambda p: isinstance(p, str) and p != ""), SECRETS)
def test_a_bad_port_in_the_dsn_is_a_configuration_error(port: str, secret: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse(f"postgresql://app:{secret}@db.example.com:{quote(port, safe=':')}/app")
    _assert_secret_kept(raised.value, secret)


@st.composite
def typos(draw: st.DrawFn) -> tuple[str, str]:
    """(an option's name with one character deleted, replaced, inserted or swapped, the name)."""
    name = draw(st.sampled_from(sorted(OPTION_NAMES)))
    at = draw(st.integers(0, len(name) - 1))
    char = draw(st.sampled_from(LOWER + "_"))
    typo = draw(
        st.sampled_from(
            [
                name[:at] + name[at + 1 :],
                name[:at] + char + name[at + 1 :],
                name[:at] + char + name[at:],
                name[:at] + name[at + 1 : at + 2] + name[at : at + 1] + name[at + 2 :],
            ]
        )
    )
    assume(typo not in OPTION_NAMES)
    return typo, name


@FAST
@given(typos(), st.sampled_from(["postgresql", "mysql"]))
def test_a_typo_of_an_option_in_a_dsn_is_refused(typo: tuple[str, str], scheme: str) -> None:
    """Not sent to the server as a setting (PostgreSQL), and named as the option it looks like."""
    wrong, _ = typo
    with pytest.raises(ConfigurationError, match="did you mean '[a-z_]+'\\?"):
        parse(f"{scheme}://app@db.example.com/app?{urlencode({wrong: '3'})}")


# what people type into a URL, plus characters that NFKC-normalise into URL delimiters
URL_CHARACTERS = st.one_of(
    st.sampled_from(list(":/?#[]@!$&'()*+,;=%-._~ \t\n")),
    st.sampled_from(["\uff0f", "\uff1f", "\uff03", "\uff20", "\uff1a", "\u2100", "\u2488", "\ufe6b"]),
    st.characters(codec="utf-8"),
)


@FAST
@example("u:p[w@db.example.com/app", "postgresql://")  # was urlsplit's ValueError("Invalid IPv6 URL")
@example("u:p\uff0fw@db.example.com/app", "postgresql://")  # was its ValueError quoting the password
@example("db.example.com:" + "1" * 5000 + "/app", "postgresql://")  # was int()'s ValueError
@given(st.text(URL_CHARACTERS, max_size=40), st.sampled_from(["postgresql://", "postgres://", ""]))
def test_any_dsn_parses_or_raises_configuration_error(rest: str, scheme: str) -> None:
    try:
        parse(scheme + rest)
    except ConfigurationError:
        pass


@FAST
@example("pw0123456789ab", "/", "", "db.example.com")  # was "port must be ..., not 'pw0123456789ab'"
@example("pw0123456789ab", ",", "/", "db.example.com")  # was "DSN names several hosts (app:pw...,)"
@example("pw0123456789ab", "\uff1f", "", "db.example.com")  # was urlsplit's ValueError quoting it
@given(
    SECRETS,
    st.text(URL_CHARACTERS, min_size=1, max_size=3),
    st.text(URL_CHARACTERS, max_size=8),
    st.sampled_from(["db.example.com", "10.0.0.5", "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"]),
)
def test_a_password_that_is_not_percent_encoded_never_shows_in_an_error(
    secret: str, special: str, tail: str, host: str
) -> None:
    """Users paste passwords into DSNs unencoded; a ``/``, ``?``, ``#`` or ``[`` then breaks the URL.
    The error must say so without quoting any part of the password."""
    dsn = f"postgresql://app:{secret}{special}{tail}@{host}:5432/app"
    try:
        parse(dsn)
    except ConfigurationError as error:
        _assert_secret_kept(error, secret)


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(Options)], ids=lambda f: f.name)
def test_passing_an_options_default_is_the_same_as_leaving_it_out(field: dataclasses.Field[Any]) -> None:
    """``cluster_id=None`` (say, from an unset setting) must mean "not set", as leaving it out does."""
    assert field.default is not dataclasses.MISSING
    assert parse(host="db.example.com", **{field.name: field.default}) == parse(host="db.example.com")


@QUICK
@given(HOSTS)
def test_an_unset_cluster_id_leaves_the_cluster_identity_alone(host: str) -> None:
    """Otherwise every cluster reached with ``cluster_id=None`` has the identity ``"None"``: connections
    to different clusters share one ``Cluster`` (its topology, writer search and tracker)."""
    assert cluster_key(parse(host=host, cluster_id=None)) == cluster_key(parse(host=host))


# -- host names ------------------------------------------------------------------------------------------


@FAST
@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_any_text_classifies_as_some_host_kind(text: str) -> None:
    rds = classify_host(text)
    assert rds.host == text
    assert (rds.instance_template is not None) == (rds.url_type.is_rds and rds.domain is not None)
    if rds.url_type in (RdsUrlType.IP_ADDRESS, RdsUrlType.OTHER):
        assert (rds.name, rds.domain, rds.region) == (None, None, None)


@FAST
@given(st.text(st.characters(codec="ascii"), max_size=60) | rds_cluster_hosts().map(lambda h: h[0]))
def test_classification_ignores_case(text: str) -> None:
    lower, upper = classify_host(text.lower()), classify_host(text.upper())
    assert lower.url_type is upper.url_type
    assert [(v or "").lower() for v in (lower.name, lower.domain, lower.region)] == [
        (v or "").lower() for v in (upper.name, upper.domain, upper.region)
    ]


@FAST
@given(rds_cluster_hosts(), st.lists(st.booleans(), max_size=80), st.booleans())
def test_cluster_endpoints_are_recognised_in_every_partition(
    generated: tuple[str, RdsUrlType, str, str, str], flips: list[bool], fully_qualified: bool
) -> None:
    host, url_type, name, domain, region = generated
    spelled = mixed_case(host, flips) + ("." if fully_qualified else "")
    rds = classify_host(spelled)
    assert rds.url_type is url_type
    assert rds.url_type.is_rds_cluster and rds.url_type.has_region
    assert (rds.name or "").lower() == name
    assert (rds.domain or "").lower() == domain
    assert (rds.region or "").lower() == region


@FAST
@given(rds_cluster_hosts(), INSTANCE_IDS, st.none() | PORTS)
def test_the_instance_template_builds_instances_of_the_same_cluster(
    generated: tuple[str, RdsUrlType, str, str, str], instance_id: str, port: int | None
) -> None:
    host, _, _, domain, region = generated
    template = classify_host(host).instance_template
    assert template == f"?.{domain}"
    pattern = HostPattern.parse(template + (f":{port}" if port else ""))
    assert pattern == HostPattern(template, port)
    built = classify_host(pattern.host_for(instance_id))
    assert (built.url_type, built.name, built.domain, built.region) == (
        RdsUrlType.RDS_INSTANCE,
        instance_id,
        domain,
        region,
    )
    assert built.instance_template == template  # an instance endpoint leads to the same instances


@FAST
@given(rds_cluster_hosts(), st.lists(st.booleans(), max_size=80))
def test_a_clusters_identity_ignores_case_and_endpoint_kind(
    generated: tuple[str, RdsUrlType, str, str, str], flips: list[bool]
) -> None:
    host, url_type, name, domain, _ = generated
    assume(url_type is not RdsUrlType.RDS_CUSTOM_CLUSTER)
    writer = f"{name}.cluster-{domain}"
    reader = f"{name}.cluster-ro-{domain}"
    keys = {cluster_key(parse(host=h, user="app")) for h in (host, mixed_case(host, flips), writer, reader)}
    assert len(keys) == 1


@FAST
@example("?:" + "1" * 5000)  # was int()'s ValueError
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_any_pattern_parses_or_raises_configuration_error(text: str) -> None:
    try:
        pattern = HostPattern.parse(text)
    except ConfigurationError as error:
        assert type(error) is ConfigurationError
        assert str(error).startswith(f"cluster_instance_host_pattern {text!r} ")
        return
    assert "?" in pattern.template and pattern.template == pattern.template.strip()
    assert not any(c.isspace() for c in pattern.template)
    assert pattern.port is None or 0 < pattern.port < 65536
    canonical = pattern.template + (f":{pattern.port}" if pattern.port is not None else "")
    assert HostPattern.parse(canonical) == pattern


PATTERN_CHARACTERS = st.sampled_from(list(string.ascii_letters + string.digits + "?.-:,/@_%[] "))


@FAST
@example("/tmp/?", "1")  # was accepted: instance hosts would be Unix socket paths
@example("a,?", "1")  # was accepted: instance hosts would be host lists
@given(st.text(PATTERN_CHARACTERS, min_size=1, max_size=30), INSTANCE_IDS | st.integers(1, 254).map(str))
def test_every_host_a_pattern_builds_is_a_host_aurora_async_accepts(text: str, instance_id: str) -> None:
    """A pattern may not build what ``host=`` refuses (host lists, Unix socket paths)."""
    try:
        pattern = HostPattern.parse(text)
    except ConfigurationError:
        return
    host = pattern.host_for(instance_id)
    config = parse(host=host, port=pattern.port or 5432)
    assert config.host == host


@FAST
@given(st.text(PATTERN_CHARACTERS, min_size=1, max_size=30))
def test_pattern_validation_ignores_case(text: str) -> None:
    def accepted(candidate: str) -> HostPattern | None:
        try:
            return HostPattern.parse(candidate)
        except ConfigurationError:
            return None

    lower, upper = accepted(text.lower()), accepted(text.upper())
    assert (lower is None) == (upper is None)
    if lower is not None and upper is not None:
        assert lower.template.lower() == upper.template.lower() and lower.port == upper.port


@FAST
@given(HOST_NAMES | IPV4.map(lambda a: a.rsplit(".", 1)[0] + ".?"), st.none() | PORTS)
def test_generated_patterns_round_trip(name: str, port: int | None) -> None:
    template = name if "?" in name else f"?.{name}"
    pattern = HostPattern.parse(template + (f":{port}" if port is not None else ""))
    assert pattern == HostPattern(template, port)
    assert parse(
        host="db.example.com", cluster_instance_host_pattern=pattern
    ).options.cluster_instance_host_pattern == (pattern)


# -- topology rows ---------------------------------------------------------------------------------------

IDS = st.none() | st.sampled_from(["11", "12", "13", "a", "", "MASTER_SESSION_ID"]) | TEXT
BASE = datetime(2024, 5, 1, 12, 0, 0)


@st.composite
def status_rows(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Rows of Aurora's topology query: (server_id, is_writer, cpu, lag, last_update), as garbage as
    the catalog can be: NULLs, duplicate ids, no / one / many writers; timestamps all naive or all
    aware (one column has one type)."""
    zone = draw(st.sampled_from([None, UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=9))]))
    stamps = st.none() | st.integers(-10_000, 10_000).map(
        lambda s: (BASE + timedelta(seconds=s)).replace(tzinfo=zone)
    )
    row = st.tuples(
        IDS,
        st.none() | st.booleans(),
        st.none() | st.floats(allow_nan=False, allow_infinity=False),
        st.none() | st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**6),
        stamps,
    )
    return draw(st.lists(row, max_size=8))


def _build(
    instance_id: str, endpoint: str | None, row_port: int | None, region: str | None = None
) -> tuple[str, int]:
    return f"{instance_id}.instances.example", 5432


def _sort_key(stamp: datetime | None) -> tuple[bool, datetime]:
    if stamp is None:
        return (False, datetime.min.replace(tzinfo=UTC))
    return (True, stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC))


@ROWS
@example([("11", True, 0.0, 0.0, BASE), ("11", False, 0.0, 0.0, BASE)])  # was no writer at all
@example([("11", True, 0.0, 0.0, BASE), ("11", True, 0.0, 0.0, None)])  # was the writer stamped None
@example([("11", True, 0.0, 0.0, None), ("12", True, 0.0, 0.0, None)])  # was "11" demoted without its lag
@given(status_rows())
def test_aurora_rows_give_exactly_one_writer_the_newest_writer_row(rows: list[tuple[Any, ...]]) -> None:
    instances = aurora_instances(rows, _build)
    writer_rows = [r for r in rows if r[0] is not None and r[1]]
    if not writer_rows:
        assert instances is None
        return
    assert instances is not None
    ids = [i.instance_id for i in instances]
    assert len(ids) == len(set(ids)), "instance ids are unique"
    assert set(ids) == {str(r[0]) for r in rows if r[0] is not None}, "every named row, no NULL id"
    writers = [i for i in instances if i.role is Role.WRITER]
    assert len(writers) == 1, f"exactly one writer, not {writers}"
    newest = max(_sort_key(r[4]) for r in writer_rows)
    newest_ids = {str(r[0]) for r in writer_rows if _sort_key(r[4]) == newest}
    assert writers[0].instance_id in newest_ids, "the most recently updated writer row wins"
    assert _sort_key(writers[0].last_update) == newest
    for instance in instances:
        assert (instance.host, instance.port) == _build(instance.instance_id, None, None)
        same_id = [r for r in rows if r[0] is not None and str(r[0]) == instance.instance_id]
        lag = instance.replica_lag_ms
        assert any(
            r[4] == instance.last_update and (lag is None if r[3] is None else lag == float(r[3]))
            for r in same_id
        ), f"{instance!r} comes from one of its rows"


@FAST
@given(status_rows(), st.randoms(use_true_random=False))
def test_row_order_does_not_change_who_is_who(rows: list[tuple[Any, ...]], rng: Any) -> None:
    # with unique ids and one newest writer row, any order of the rows gives the same roles
    named = [r for r in rows if r[0] is not None]
    assume(len({str(r[0]) for r in named}) == len(named))
    writer_stamps = [_sort_key(r[4]) for r in named if r[1]]
    assume(not writer_stamps or writer_stamps.count(max(writer_stamps)) == 1)
    shuffled = list(rows)
    rng.shuffle(shuffled)
    first, second = aurora_instances(rows, _build), aurora_instances(shuffled, _build)
    if first is None or second is None:
        assert first is second is None
        return
    assert {(i.instance_id, i.role) for i in first} == {(i.instance_id, i.role) for i in second}


class _MultiAzCatalog:
    """What ``MultiAzPgDialect.topology`` reads from a connection: the source (writer) resource id, then
    the ``rds_tools.show_topology()`` rows. Only those two calls."""

    def __init__(self, source: str | None, rows: list[tuple[Any, ...]]) -> None:
        self.source, self.rows = source, rows

    async def fetchval(self, query: str, timeout: float | None = None) -> str | None:
        assert query == MultiAzPgDialect.SOURCE_SQL
        return self.source

    async def fetch(self, query: str, timeout: float | None = None) -> list[tuple[Any, ...]]:
        assert query == MultiAzPgDialect.TOPOLOGY_SQL
        return self.rows


DBIS = st.none() | st.sampled_from(["db-A", "db-B", "db-C"])
ENDPOINTS = st.none() | st.sampled_from(
    ["i1.abc.us-east-1.rds.amazonaws.com", "i2.abc.us-east-1.rds.amazonaws.com", "i3", ""]
    + ["10.0.0.1", "10.0.0.2", "fd00::1"]
)


@ROWS
@example(None, [(None, None, None)])  # was a writer named "None"
@example("db-A", [("db-A", "i1", 5432), ("db-A", "i1", 5432)])  # was two writers
@given(DBIS, st.lists(st.tuples(DBIS, ENDPOINTS, st.none() | PORTS), max_size=6))
async def test_multi_az_rows_give_at_most_one_writer_and_no_null_instances(
    source: str | None, rows: list[tuple[Any, ...]]
) -> None:
    build = host_builder(HostPattern.parse("?.abc.us-east-1.rds.amazonaws.com"), "ignored", 5432)
    catalog = _MultiAzCatalog(source, rows)
    instances = await MultiAzPgDialect().topology(catalog, 1.0, build)
    writer_rows = [r for r in rows if source is not None and r[0] == source and r[1] is not None]
    if not writer_rows:
        assert instances is None, "no row is the source instance: no usable topology"
        return
    assert instances is not None
    ids = [i.instance_id for i in instances]
    assert len(ids) == len(set(ids)), "one instance per name"
    assert "None" not in ids, "a NULL endpoint names no instance"
    writers = [i for i in instances if i.role is Role.WRITER]
    assert len(writers) == 1
    assert writers[0].instance_id in {multi_az_instance_name(str(r[1]), r[2]) for r in writer_rows}
    assert all(isinstance(i, Instance) for i in instances)
    # an IP address is no instance identifier: every address and port listed is an instance of its own
    listed = {(r[1], r[2]) for r in rows if r[0] is not None and r[1] is not None}
    by_address = {(i.host, i.port) for i in instances if _is_ip(i.host)}
    assert by_address == {(e, p or 5432) for e, p in listed if _is_ip(e)}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@given(status_rows(), IDS.filter(lambda i: i is not None))
def test_a_proven_writer_is_the_only_writer_whatever_the_rows_say(
    rows: list[tuple[Any, ...]], proven: str
) -> None:
    instances = with_writer(aurora_instances(rows, _build) or [], proven, "proven.example", 6543)
    writers = [i for i in instances if i.role is Role.WRITER]
    assert [w.instance_id for w in writers] == [proven]
    # rows naming no writer are unusable as a whole (aurora_instances gives None): only the writer is left
    usable = any(r[0] is not None and r[1] for r in rows)
    named = {str(r[0]) for r in rows if r[0] is not None} if usable else set()
    assert {i.instance_id for i in instances} == named | {proven}, "no instance lost or invented"
    if proven not in named:
        assert (writers[0].host, writers[0].port) == ("proven.example", 6543)
