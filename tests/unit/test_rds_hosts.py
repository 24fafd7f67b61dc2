"""RDS host-name classification and ``cluster_instance_host_pattern`` parsing (``_rds_hosts``): no sockets.

Expected values follow the incumbent wrapper's rules: ``RdsUtils.identify_rds_type`` and
``get_rds_instance_host_pattern`` in ``aws_advanced_python_wrapper/utils/rds_utils.py`` and the
host-pattern validation of ``TopologyUtils`` in ``aws_advanced_python_wrapper/host_list_provider.py``
(github.com/aws/aws-advanced-python-wrapper).
"""

from __future__ import annotations

import dataclasses

import pytest

import aurora_async
from aurora_async._rds_hosts import HostPattern, RdsHost, RdsUrlType, classify_host

T = RdsUrlType

# Cluster/instance domain (``<id>.<region-part>``) and region of every partition the reference names.
PARTITIONS: dict[str, tuple[str, str]] = {
    "commercial": ("abc123.us-east-1.rds.amazonaws.com", "us-east-1"),
    "commercial-eu": ("xyz789.eu-west-2.rds.amazonaws.com", "eu-west-2"),
    "china": ("abc123.rds.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    "china-old": ("abc123.cn-northwest-1.rds.amazonaws.com.cn", "cn-northwest-1"),
    "govcloud": ("abc123.rds.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    "govcloud-regional": ("abc123.us-gov-east-1.rds.amazonaws.com", "us-gov-east-1"),
    "iso-c2s": ("abc123.rds.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"),
    "isob-sc2s": ("abc123.rds.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1"),
}

# (first label, DNS prefix of the second label, expected type)
ENDPOINT_KINDS: list[tuple[str, str, RdsUrlType]] = [
    ("mydb", "cluster-", T.RDS_WRITER_CLUSTER),
    ("mydb", "cluster-ro-", T.RDS_READER_CLUSTER),
    ("myendpoint", "cluster-custom-", T.RDS_CUSTOM_CLUSTER),
    ("myproxy", "proxy-", T.RDS_PROXY),
    ("mylimitless", "shardgrp-", T.RDS_AURORA_LIMITLESS_DB_SHARD_GROUP),
    ("instance-1", "", T.RDS_INSTANCE),
]

PARTITION_CASES = [
    pytest.param(
        f"{name}.{prefix}{domain}", url_type, name, domain, region, id=f"{partition}-{url_type.name}"
    )
    for partition, (domain, region) in PARTITIONS.items()
    for name, prefix, url_type in ENDPOINT_KINDS
]

# The brief's and the reference's own examples, spelled out.
EXPLICIT_CASES = [
    (
        "mydb.cluster-abc123.us-east-1.rds.amazonaws.com",
        T.RDS_WRITER_CLUSTER,
        "mydb",
        "abc123.us-east-1.rds.amazonaws.com",
        "us-east-1",
    ),
    (
        "mydb.cluster-ro-abc123.us-east-1.rds.amazonaws.com",
        T.RDS_READER_CLUSTER,
        "mydb",
        "abc123.us-east-1.rds.amazonaws.com",
        "us-east-1",
    ),
    (
        "mydb.cluster-xyz.us-east-2.rds.amazonaws.com",
        T.RDS_WRITER_CLUSTER,
        "mydb",
        "xyz.us-east-2.rds.amazonaws.com",
        "us-east-2",
    ),
    (
        "mydb.cluster-abc123.rds.cn-north-1.amazonaws.com.cn",
        T.RDS_WRITER_CLUSTER,
        "mydb",
        "abc123.rds.cn-north-1.amazonaws.com.cn",
        "cn-north-1",
    ),
    (
        "mydb.cluster-ro-abc123.rds.us-gov-west-1.amazonaws.com",
        T.RDS_READER_CLUSTER,
        "mydb",
        "abc123.rds.us-gov-west-1.amazonaws.com",
        "us-gov-west-1",
    ),
    # Global database writer endpoint: no regional part (the label in that place is literally
    # "global", which is no region: an IAM token signed for it, or a Secrets Manager client made for
    # it, would be refused), so no region.
    (
        "myglobal.global-abc123.global.rds.amazonaws.com",
        T.RDS_GLOBAL_WRITER_CLUSTER,
        "myglobal",
        "abc123.global.rds.amazonaws.com",
        None,
    ),
    # Dotted first part: everything before the prefixed label is the name.
    (
        "app.mydb.cluster-abc123.us-east-1.rds.amazonaws.com",
        T.RDS_WRITER_CLUSTER,
        "app.mydb",
        "abc123.us-east-1.rds.amazonaws.com",
        "us-east-1",
    ),
    # An instance whose id merely looks like a prefix is still an instance.
    (
        "cluster-ro-1.abc123.us-east-1.rds.amazonaws.com",
        T.RDS_INSTANCE,
        "cluster-ro-1",
        "abc123.us-east-1.rds.amazonaws.com",
        "us-east-1",
    ),
    (
        "proxy-db.abc123.us-east-1.rds.amazonaws.com",
        T.RDS_INSTANCE,
        "proxy-db",
        "abc123.us-east-1.rds.amazonaws.com",
        "us-east-1",
    ),
]


@pytest.mark.parametrize(("host", "url_type", "name", "domain", "region"), PARTITION_CASES)
def test_every_endpoint_kind_in_every_partition(
    host: str, url_type: RdsUrlType, name: str, domain: str, region: str | None
) -> None:
    assert classify_host(host) == RdsHost(host, url_type, name, domain, region)


@pytest.mark.parametrize(("host", "url_type", "name", "domain", "region"), EXPLICIT_CASES)
def test_explicit_examples(host: str, url_type: RdsUrlType, name: str, domain: str, region: str) -> None:
    assert classify_host(host) == RdsHost(host, url_type, name, domain, region)


@pytest.mark.parametrize(
    ("host", "url_type", "name", "domain", "region"),
    [
        (
            "MYDB.CLUSTER-RO-ABC123.US-EAST-1.RDS.AMAZONAWS.COM",
            T.RDS_READER_CLUSTER,
            "MYDB",
            "ABC123.US-EAST-1.RDS.AMAZONAWS.COM",
            "US-EAST-1",
        ),
        (
            "MyDb.Cluster-AbC123.Us-West-2.Rds.AmazonAws.Com",
            T.RDS_WRITER_CLUSTER,
            "MyDb",
            "AbC123.Us-West-2.Rds.AmazonAws.Com",
            "Us-West-2",
        ),
        (
            "myEndpoint.CLUSTER-CUSTOM-abc123.rds.CN-NORTH-1.amazonaws.COM.CN",
            T.RDS_CUSTOM_CLUSTER,
            "myEndpoint",
            "abc123.rds.CN-NORTH-1.amazonaws.COM.CN",
            "CN-NORTH-1",
        ),
        (
            "MyProxy.Proxy-ABC123.RDS.US-GOV-WEST-1.AMAZONAWS.COM",
            T.RDS_PROXY,
            "MyProxy",
            "ABC123.RDS.US-GOV-WEST-1.AMAZONAWS.COM",
            "US-GOV-WEST-1",
        ),
        (
            "DB.SHARDGRP-ABC123.US-EAST-1.RDS.AMAZONAWS.COM",
            T.RDS_AURORA_LIMITLESS_DB_SHARD_GROUP,
            "DB",
            "ABC123.US-EAST-1.RDS.AMAZONAWS.COM",
            "US-EAST-1",
        ),
        (
            "G.GLOBAL-ABC123.GLOBAL.RDS.AMAZONAWS.COM",
            T.RDS_GLOBAL_WRITER_CLUSTER,
            "G",
            "ABC123.GLOBAL.RDS.AMAZONAWS.COM",
            None,  # a global writer endpoint names no region
        ),
        (
            "Instance-1.ABC123.rds.us-iso-east-1.C2S.IC.GOV",
            T.RDS_INSTANCE,
            "Instance-1",
            "ABC123.rds.us-iso-east-1.C2S.IC.GOV",
            "us-iso-east-1",
        ),
    ],
)
def test_classification_is_case_insensitive_and_keeps_the_hosts_spelling(
    host: str, url_type: RdsUrlType, name: str, domain: str, region: str | None
) -> None:
    assert classify_host(host) == RdsHost(host, url_type, name, domain, region)


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "192.168.1.254",
        "0.0.0.0",
        "255.255.255.255",
        "127.0.0.1",
        "::1",
        "::",
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "FE80::ABCD",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "[::1]",
        "[2001:db8::1]",
        " 10.0.0.1 ",
    ],
)
def test_ip_addresses_are_ip(host: str) -> None:
    rds = classify_host(host)
    assert rds == RdsHost(host, T.IP_ADDRESS, None, None, None)
    assert rds.instance_template is None


@pytest.mark.parametrize(
    "host",
    [
        "",
        "   ",
        "localhost",
        "db.example.com",
        "mydb.cluster-abc123.example.com",
        "db.internal",
        "256.1.1.1",
        "1.2.3",
        # an ELB host carries a region but is not an RDS endpoint
        "myelb-123.elb.us-east-1.amazonaws.com",
        # no name in front of the id label
        "abc123.us-east-1.rds.amazonaws.com",
        # the id label after the prefix has a hyphen / an unknown prefix
        "mydb.cluster-abc-123.us-east-1.rds.amazonaws.com",
        "mydb.unknown-abc123.us-east-1.rds.amazonaws.com",
        # no region part
        "mydb.cluster-abc123.rds.amazonaws.com",
        # RDS-looking names inside another domain, or the wrong top-level domain
        "mydb.cluster-abc123.us-east-1.rds.amazonaws.com.example.com",
        "mydb.cluster-abc123.us-east-1.rds.amazonaws.org",
        "mydb.cluster-abc123.rds.cn-north-1.amazonaws.com.cn.evil",
        "mydb.cluster-abc123.us-east-1.rds.amazonaws.com:5432",
        "mydb.cluster-abc123.rds.us-iso-east-1.c2s.ic.gov.example",
        "rds.amazonaws.com",
        "amazonaws.com.cn",
    ],
)
def test_non_rds_hosts_are_other(host: str) -> None:
    rds = classify_host(host)
    assert rds == RdsHost(host, T.OTHER, None, None, None)
    assert rds.instance_template is None


# (is_rds, is_rds_cluster, has_region) per the reference's flags table.
FLAGS = {
    T.IP_ADDRESS: (False, False, False),
    T.RDS_WRITER_CLUSTER: (True, True, True),
    T.RDS_READER_CLUSTER: (True, True, True),
    T.RDS_CUSTOM_CLUSTER: (True, True, True),
    T.RDS_PROXY: (True, False, True),
    T.RDS_INSTANCE: (True, False, True),
    T.RDS_AURORA_LIMITLESS_DB_SHARD_GROUP: (True, False, True),
    T.RDS_GLOBAL_WRITER_CLUSTER: (True, True, False),
    T.OTHER: (False, False, False),
}


@pytest.mark.parametrize(("url_type", "flags"), list(FLAGS.items()), ids=lambda v: getattr(v, "name", ""))
def test_url_type_flags(url_type: RdsUrlType, flags: tuple[bool, bool, bool]) -> None:
    assert (url_type.is_rds, url_type.is_rds_cluster, url_type.has_region) == flags


def test_flags_table_and_classification_tables_cover_every_url_type() -> None:
    assert set(FLAGS) == set(RdsUrlType)
    classified = {case.values[1] for case in PARTITION_CASES} | {row[1] for row in EXPLICIT_CASES}
    assert classified | {T.IP_ADDRESS, T.OTHER} == set(RdsUrlType)


@pytest.mark.parametrize(
    ("host", "template"),
    [
        # the reference's own example
        ("mydb.cluster-xyz.us-east-2.rds.amazonaws.com", "?.xyz.us-east-2.rds.amazonaws.com"),
        ("mydb.cluster-ro-abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com"),
        ("mydb.cluster-custom-abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com"),
        ("instance-1.abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com"),
        ("myproxy.proxy-abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com"),
        ("db.shardgrp-abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com"),
        ("mydb.cluster-abc123.rds.cn-north-1.amazonaws.com.cn", "?.abc123.rds.cn-north-1.amazonaws.com.cn"),
        ("mydb.cluster-abc123.cn-north-1.rds.amazonaws.com.cn", "?.abc123.cn-north-1.rds.amazonaws.com.cn"),
        ("mydb.cluster-abc123.rds.us-gov-west-1.amazonaws.com", "?.abc123.rds.us-gov-west-1.amazonaws.com"),
        ("mydb.cluster-abc123.rds.us-isob-east-1.sc2s.sgov.gov", "?.abc123.rds.us-isob-east-1.sc2s.sgov.gov"),
        ("MYDB.CLUSTER-ABC123.US-EAST-1.RDS.AMAZONAWS.COM", "?.ABC123.US-EAST-1.RDS.AMAZONAWS.COM"),
    ],
)
def test_instance_template_is_the_cluster_domain(host: str, template: str) -> None:
    assert classify_host(host).instance_template == template


def test_a_global_writer_endpoint_gives_no_instance_template() -> None:
    """Its instances live in each region's own domain (``?.<id>.<region>.rds.amazonaws.com``), not under
    ``global.rds.amazonaws.com``: instance names built from it would not resolve, so none is built
    (connecting through it needs cluster_instance_host_pattern)."""
    assert classify_host("g.global-abc123.global.rds.amazonaws.com").instance_template is None


def test_instance_template_builds_the_instance_endpoint_of_the_same_cluster() -> None:
    template = classify_host("mydb.cluster-abc123.rds.cn-north-1.amazonaws.com.cn").instance_template
    assert template is not None
    instance = template.replace("?", "instance-2")
    assert instance == "instance-2.abc123.rds.cn-north-1.amazonaws.com.cn"
    assert classify_host(instance) == RdsHost(
        instance, T.RDS_INSTANCE, "instance-2", "abc123.rds.cn-north-1.amazonaws.com.cn", "cn-north-1"
    )


def test_instance_template_is_none_without_a_domain() -> None:
    assert RdsHost("x", T.RDS_WRITER_CLUSTER).instance_template is None
    assert RdsHost("x", T.OTHER, "n", "d.example.com", "r").instance_template is None
    assert RdsHost("x", T.IP_ADDRESS, None, "d.example.com").instance_template is None


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        (
            "mydb.cluster-abc123.us-east-1.rds.amazonaws.com",
            "mydb.cluster-ro-abc123.us-east-1.rds.amazonaws.com",
        ),
        (
            "mydb.cluster-abc123.rds.cn-north-1.amazonaws.com.cn",
            "mydb.cluster-ro-abc123.rds.cn-north-1.amazonaws.com.cn",
        ),
        (
            "mydb.cluster-abc123.rds.us-gov-west-1.amazonaws.com",
            "mydb.cluster-ro-abc123.rds.us-gov-west-1.amazonaws.com",
        ),
    ],
)
def test_writer_and_reader_endpoints_name_the_same_cluster(writer: str, reader: str) -> None:
    w, r = classify_host(writer), classify_host(reader)
    assert (w.url_type, r.url_type) == (T.RDS_WRITER_CLUSTER, T.RDS_READER_CLUSTER)
    assert (w.name, w.domain, w.region) == (r.name, r.domain, r.region)
    assert w.name == "mydb"
    assert w.instance_template == r.instance_template


def test_classification_keeps_the_host_as_given_and_is_stable() -> None:
    host = "  mydb.cluster-abc123.us-east-1.rds.amazonaws.com "
    first = classify_host(host)
    assert first.host == host
    assert first.url_type is T.RDS_WRITER_CLUSTER
    assert (first.name, first.domain) == ("mydb", "abc123.us-east-1.rds.amazonaws.com")
    assert classify_host(host) == first


def test_rds_host_is_immutable() -> None:
    rds = classify_host("mydb.cluster-abc123.us-east-1.rds.amazonaws.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rds.name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# HostPattern: the cluster_instance_host_pattern option


@pytest.mark.parametrize(
    ("pattern", "template", "port"),
    [
        ("?.my-domain.com", "?.my-domain.com", None),
        ("?.my-domain.com:9999", "?.my-domain.com", 9999),
        ("?.abc123.us-east-1.rds.amazonaws.com", "?.abc123.us-east-1.rds.amazonaws.com", None),
        ("?.abc123.us-east-1.rds.amazonaws.com:5432", "?.abc123.us-east-1.rds.amazonaws.com", 5432),
        ("?.abc123.rds.cn-north-1.amazonaws.com.cn:5433", "?.abc123.rds.cn-north-1.amazonaws.com.cn", 5433),
        ("?.abc123.rds.us-gov-west-1.amazonaws.com", "?.abc123.rds.us-gov-west-1.amazonaws.com", None),
        ("10.0.0.?", "10.0.0.?", None),
        ("10.0.0.?:5432", "10.0.0.?", 5432),
        ("db-?.internal:1", "db-?.internal", 1),
        ("?.my-domain.com:65535", "?.my-domain.com", 65535),
        ("?", "?", None),
        ("?:6543", "?", 6543),
        ("  ?.my-domain.com:9999\n", "?.my-domain.com", 9999),
        # only proxy and custom endpoints are refused; a cluster endpoint pattern is accepted
        (
            "?.cluster-abc123.us-east-1.rds.amazonaws.com",
            "?.cluster-abc123.us-east-1.rds.amazonaws.com",
            None,
        ),
    ],
)
def test_host_pattern_parses_valid_patterns(pattern: str, template: str, port: int | None) -> None:
    assert HostPattern.parse(pattern) == HostPattern(template, port)


@pytest.mark.parametrize(
    ("pattern", "instance_id", "host"),
    [
        (
            "?.abc123.us-east-1.rds.amazonaws.com",
            "instance-1",
            "instance-1.abc123.us-east-1.rds.amazonaws.com",
        ),
        ("?.my-domain.com:9999", "db-2", "db-2.my-domain.com"),
        ("?.abc123.rds.cn-north-1.amazonaws.com.cn", "i3", "i3.abc123.rds.cn-north-1.amazonaws.com.cn"),
        ("10.0.0.?:5432", "17", "10.0.0.17"),
        ("db-?.internal", "a", "db-a.internal"),
        ("?.?.example.com", "x", "x.x.example.com"),
    ],
)
def test_host_pattern_builds_instance_hosts(pattern: str, instance_id: str, host: str) -> None:
    assert HostPattern.parse(pattern).host_for(instance_id) == host


def test_built_host_classifies_as_an_instance_of_the_cluster() -> None:
    cluster = classify_host("mydb.cluster-abc123.us-east-1.rds.amazonaws.com")
    assert cluster.instance_template is not None
    built = HostPattern.parse(cluster.instance_template + ":5432")
    assert built.port == 5432
    host = built.host_for("instance-7")
    assert classify_host(host) == RdsHost(
        host, T.RDS_INSTANCE, "instance-7", "abc123.us-east-1.rds.amazonaws.com", "us-east-1"
    )


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "is empty or contains white space"),
        ("   ", "is empty or contains white space"),
        ("?.my domain.com", "is empty or contains white space"),
        ("?.my-domain.com :9999", "is empty or contains white space"),
        ("my-domain.com", "has no '?'"),
        ("10.0.0.1", "has no '?'"),
        ("10.0.0.1:5432", "has no '?'"),
        ("instance-1.abc123.us-east-1.rds.amazonaws.com", "has no '?'"),
        (":5432", "has no '?'"),
        ("?.proxy-abc123.us-east-1.rds.amazonaws.com", "cannot point at an RDS Proxy endpoint"),
        ("?.proxy-abc123.us-east-1.rds.amazonaws.com:5432", "cannot point at an RDS Proxy endpoint"),
        ("?.PROXY-ABC123.US-EAST-1.RDS.AMAZONAWS.COM", "cannot point at an RDS Proxy endpoint"),
        ("?.proxy-abc123.rds.cn-north-1.amazonaws.com.cn", "cannot point at an RDS Proxy endpoint"),
        ("?.proxy-abc123.rds.us-gov-west-1.amazonaws.com", "cannot point at an RDS Proxy endpoint"),
        ("?.cluster-custom-abc123.us-east-1.rds.amazonaws.com", "cannot point at a custom cluster endpoint"),
        (
            "?.Cluster-Custom-abc123.us-east-1.rds.amazonaws.com:5432",
            "cannot point at a custom cluster endpoint",
        ),
        (
            "?.cluster-custom-abc123.cn-north-1.rds.amazonaws.com.cn",
            "cannot point at a custom cluster endpoint",
        ),
        ("?.cluster-custom-abc123.rds.us-iso-east-1.c2s.ic.gov", "cannot point at a custom cluster endpoint"),
        ("[?]", "looks like an IPv6 literal"),
        ("[fd00::?]:5432", "looks like an IPv6 literal"),
        ("fd00::?", "looks like an IPv6 literal"),
        ("2001:db8::?", "looks like an IPv6 literal"),
        ("?.my-domain.com:0", "has a bad port '0'"),
        ("?.my-domain.com:65536", "has a bad port '65536'"),
        ("?.my-domain.com:99999", "has a bad port '99999'"),
        ("?.my-domain.com:", "has a bad port ''"),
        ("?.my-domain.com:abc", "has a bad port 'abc'"),
        ("?.my-domain.com:-1", "has a bad port '-1'"),
        ("?.my-domain.com:+5432", "has a bad port '+5432'"),
        ("?.my-domain.com:5432x", "has a bad port '5432x'"),
        ("10.0.0.?:?", "has a bad port '?'"),
        pytest.param("?.my-domain.com:\u00b2", "has a bad port", id="superscript-digit-port"),
        pytest.param("?.x.com:\u0665\u0664\u0663\u0662", "has a bad port", id="arabic-indic-digit-port"),
        ("?.cluster-custom-abc.us-east-1.rds.amazonaws.com.", "cannot point at a custom cluster endpoint"),
        ("?.proxy-abc.us-east-1.rds.amazonaws.com.", "cannot point at an RDS Proxy endpoint"),
    ],
)
def test_host_pattern_rejects_bad_patterns(pattern: str, why: str) -> None:
    with pytest.raises(aurora_async.ConfigurationError) as raised:
        HostPattern.parse(pattern)
    message = str(raised.value)
    assert message.startswith(f"cluster_instance_host_pattern {pattern!r} {why}")
    assert isinstance(raised.value, ValueError)


def test_host_pattern_with_two_ports_is_rejected() -> None:
    with pytest.raises(aurora_async.ConfigurationError, match="^cluster_instance_host_pattern "):
        HostPattern.parse("?.my-domain.com:5432:5433")


def test_fully_qualified_names_with_a_trailing_dot_are_classified() -> None:
    host = classify_host("mydb.cluster-abc123.us-east-1.rds.amazonaws.com.")
    assert host.url_type is RdsUrlType.RDS_WRITER_CLUSTER
    assert (host.name, host.domain) == ("mydb", "abc123.us-east-1.rds.amazonaws.com")


def test_only_ip_literals_may_be_bracketed() -> None:
    assert classify_host("[::1]").url_type is RdsUrlType.IP_ADDRESS
    assert classify_host("[mydb.cluster-abc123.us-east-1.rds.amazonaws.com]").url_type is RdsUrlType.OTHER


def test_through_a_global_writer_endpoint_the_instance_host_pattern_is_asked_for() -> None:
    from types import SimpleNamespace

    from aurora_async import ConfigurationError
    from aurora_async._discovery import Discovery
    from aurora_async.postgresql.dialects import AuroraPgDialect

    cluster = SimpleNamespace(
        host="orders.global-abc123.global.rds.amazonaws.com",
        port=5432,
        options=SimpleNamespace(cluster_instance_host_pattern=None, global_cluster_instance_host_patterns=()),
    )
    with pytest.raises(ConfigurationError, match="Global Database writer endpoint.*each region's own domain"):
        Discovery(cluster)._host_builder(AuroraPgDialect())
