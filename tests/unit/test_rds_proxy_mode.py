"""Proxy mode is decided from the options and the host, before any I/O: an RDS Proxy host name (or
``rds_proxy=True``) gives the plain dialect and no host monitoring; what would route around the proxy
is refused; ``rds_proxy=False`` keeps instance routing."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_async import ConfigurationError
from aurora_async._auth import IamSource
from aurora_async._config import parse
from aurora_async._plugins import DEFAULT_PLUGINS, Plugin

PROXY_HOST = "app.proxy-abcdefghijkl.us-east-2.rds.amazonaws.com"
CLUSTER_HOST = "app.cluster-abcdefghijkl.us-east-2.rds.amazonaws.com"


@pytest.mark.parametrize(("scheme", "plain"), [("postgresql", "pg"), ("mysql", "mysql")])
def test_a_proxy_host_name_means_proxy_mode(scheme: str, plain: str) -> None:
    options = parse(f"{scheme}://app@{PROXY_HOST}/db").options
    assert options.rds_proxy is True
    assert options.wrapper_dialect == plain
    assert Plugin.HOST_MONITORING not in options.plugins
    assert set(options.plugins) == set(DEFAULT_PLUGINS) - {Plugin.HOST_MONITORING}


def test_other_hosts_are_not_proxies_unless_told() -> None:
    for host in (CLUSTER_HOST, "10.0.0.5", "db.internal.example"):
        options = parse(f"postgresql://app@{host}/db").options
        assert options.rds_proxy is None and options.wrapper_dialect is None
        assert Plugin.HOST_MONITORING in options.plugins
    told = parse("postgresql://app@10.0.0.5/db", rds_proxy=True).options
    assert told.rds_proxy is True and told.wrapper_dialect == "pg"
    assert parse("postgresql://app@10.0.0.5/db?rds_proxy=true").options.wrapper_dialect == "pg"


def test_rds_proxy_false_routes_to_the_instances() -> None:
    options = parse(f"postgresql://app@{PROXY_HOST}/db", rds_proxy=False).options
    assert options.rds_proxy is False and options.wrapper_dialect is None
    assert Plugin.HOST_MONITORING in options.plugins


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"wrapper_dialect": "aurora-pg"}, "wrapper_dialect='aurora-pg'"),
        ({"cluster_instance_host_pattern": "10.0.0.?"}, "cluster_instance_host_pattern"),
        ({"plugins": ("failover", "read_write_splitting")}, "read_write_splitting"),
    ],
)
def test_what_would_route_around_the_proxy_is_refused(extra: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigurationError, match="RDS Proxy") as raised:
        parse("postgresql://app@10.0.0.5/db", rds_proxy=True, **extra)
    assert names in str(raised.value) and "rds_proxy=False" in str(raised.value)


def test_plain_dialect_forced_by_hand_is_accepted() -> None:
    assert parse(f"postgresql://app@{PROXY_HOST}/db", wrapper_dialect="pg").options.wrapper_dialect == "pg"


def test_iam_behind_a_proxy_signs_for_the_proxy_host_and_its_region() -> None:
    config = parse(f"postgresql://app@{PROXY_HOST}/db", plugins=("iam", "failover"), ssl=True)
    source = config.identity.credentials
    assert isinstance(source, IamSource)
    assert source.region == "us-east-2"
    assert source.host is None  # the connection's own host: the proxy, the only host it dials


def test_a_bad_value_is_named() -> None:
    with pytest.raises(ConfigurationError, match="rds_proxy must be true or false"):
        parse("postgresql://app@10.0.0.5/db", rds_proxy="maybe")
