"""Custom endpoints (``_custom_endpoint``): the member filter, the options, and, on the fake driver,
failover of connections through a custom endpoint and through the writer endpoint on one cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from aurora_async import ConfigurationError, CustomEndpointError, FailoverFailedError, FailoverSuccessError
from aurora_async._cluster import Cluster
from aurora_async._config import Config, parse
from aurora_async._custom_endpoint import Membership, membership_from
from aurora_async._topology import Instance, Role
from aurora_async.postgresql.connection import AuroraConnection

from .fake_driver import CLUSTER_HOST, PORT, FakeCluster, fake_world, make_cluster

CUSTOM = "analytics.cluster-custom-abcdefgh.us-east-1.rds.amazonaws.com"


def _instance(instance_id: str, role: Role = Role.READER) -> Instance:
    return Instance(instance_id, f"{instance_id}.x", 5432, role)


# -- the member filter ------------------------------------------------------------------------------


def test_static_members_are_the_only_ones_allowed() -> None:
    members = Membership("e", "ANY", frozenset({"a", "b"}), frozenset({"b"}))  # static wins over excluded
    assert [i.instance_id for i in members.filter(map(_instance, "abc"))] == ["a", "b"]
    assert members.allows(_instance("a", Role.WRITER))


def test_without_static_members_every_instance_but_the_excluded_is_allowed() -> None:
    members = Membership("e", "ANY", excluded=frozenset({"b"}))
    assert [i.instance_id for i in members.filter(map(_instance, "abcd"))] == ["a", "c", "d"]


def test_a_reader_endpoint_never_allows_the_writer_even_a_member() -> None:
    members = Membership("e", "READER", frozenset({"a", "b"}))
    assert not members.allows(_instance("a", Role.WRITER))
    assert members.allows(_instance("a", Role.READER)) and members.allows(_instance("b"))
    assert not members.allows(_instance("c"))


def test_the_rds_api_answer_is_read_into_a_membership() -> None:
    answer = {
        "DBClusterEndpoints": [
            {"DBClusterEndpointIdentifier": "other", "StaticMembers": ["z"]},
            {
                "DBClusterEndpointIdentifier": "analytics",
                "CustomEndpointType": "READER",
                "StaticMembers": [],
                "ExcludedMembers": ["a"],
            },
        ]
    }
    expected = Membership("analytics", "READER", frozenset(), frozenset("a"))
    assert membership_from("analytics", answer) == expected
    with pytest.raises(CustomEndpointError, match="no custom endpoint named 'nope'"):
        membership_from("nope", answer)


# -- options ----------------------------------------------------------------------------------------


def test_a_cluster_custom_host_names_its_endpoint_and_region() -> None:
    source = parse(host=CUSTOM).custom_endpoint
    assert source is not None and source.name == "analytics" and source.region == "us-east-1"
    assert source.explicit is None and source.refresh == 30.0
    assert not parse(host=CUSTOM).failover_mode_given


def test_members_given_skip_the_api_and_name_any_host() -> None:
    config = parse(
        host="127.0.0.5",
        custom_endpoint="olap",
        custom_endpoint_members="b, c",
        custom_endpoint_type="READER",
    )
    assert config.custom_endpoint is not None
    assert config.custom_endpoint.explicit == Membership("olap", "READER", frozenset({"b", "c"}))
    assert parse(host=CUSTOM, failover_mode="strict_writer").failover_mode_given


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"host": "127.0.0.5", "custom_endpoint": "olap"}, "custom_endpoint_region"),
        ({"host": CLUSTER_HOST, "custom_endpoint_members": "a"}, "apply to a custom endpoint"),
        ({"host": CUSTOM, "custom_endpoint_members": ""}, "at least one instance id"),
        ({"host": CUSTOM, "custom_endpoint_type": "WRITER"}, "reader, any"),
        ({"host": CUSTOM, "custom_endpoint_refresh": 0}, "custom_endpoint_refresh"),
    ],
)
def test_bad_custom_endpoint_options_are_refused(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        parse(**options)


def test_connections_that_differ_in_their_habits_share_one_monitor_per_endpoint() -> None:
    """The monitor key holds what the members depend on, not one connection's failover mode or wait."""
    plain = parse(host=CUSTOM).custom_endpoint
    own_mode = parse(
        host=CUSTOM, failover_mode="strict_reader", custom_endpoint_info_timeout=1
    ).custom_endpoint
    assert plain is not None and plain == own_mode and hash(plain) == hash(own_mode)


def test_a_plain_connection_has_no_custom_endpoint() -> None:
    assert parse(host=CUSTOM, plugins=()).custom_endpoint is None


# -- on the fake driver: one cluster, two endpoints ----------------------------------------------------


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world(("a", "b", "c", "d")) as world:
        yield world


async def _on(cluster: Cluster, config: Config, instance_id: str) -> AuroraConnection:
    """An application connection of ``config`` on ``instance_id``, as connect() leaves it."""
    if config.custom_endpoint is not None:
        await cluster.custom_endpoint(config.custom_endpoint, lambda: None).ready(1.0)
    assert cluster.topology is not None
    instance = cluster.topology.get(instance_id)
    assert instance is not None
    raw = await cluster.opener.open_as(config.identity, instance.host, PORT, 1.0)
    return AuroraConnection(cluster, config, cast(Any, raw), instance)


def _also(cluster: Cluster, **options: Any) -> Config:
    """A second connection's config on the same cluster (through another endpoint)."""
    options.setdefault("plugins", "failover")
    options.setdefault("failover_timeout", 1.0)
    options.setdefault("cluster_instance_host_pattern", "?.fake.invalid")
    config = parse(f"postgresql://app:secret@{CLUSTER_HOST}:{PORT}/db", **options)
    cluster.acquire(config.identity)
    return config


async def test_each_endpoint_keeps_its_own_members_through_a_failover(world: FakeCluster) -> None:
    cluster, writer_config = make_cluster(world, plugins="failover", failover_timeout=1.0)
    custom_config = _also(cluster, custom_endpoint="oltp", custom_endpoint_members="a,c")
    on_writer = await _on(cluster, writer_config, "a")
    on_custom = await _on(cluster, custom_config, "a")
    world.kill("a")
    world.promote("b")  # not a member of "oltp"
    with pytest.raises(FailoverSuccessError):
        await on_writer.execute("SELECT 1")
    assert on_writer.instance.instance_id == "b"
    outside = r"writer is now b, which is not a member of custom endpoint 'oltp'"
    with pytest.raises(FailoverFailedError, match=outside):
        await on_custom.execute("SELECT 1")
    assert on_custom.is_closed()
    await on_writer.close()


async def test_a_reader_endpoint_fails_over_to_a_reader_member_never_the_writer(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world, plugins="failover", failover_timeout=1.0)
    config = _also(
        cluster, custom_endpoint="olap", custom_endpoint_members="a,c,d", custom_endpoint_type="reader"
    )
    conn = await _on(cluster, config, "c")
    assert conn._mode == "reader_or_writer"  # the default of a READER custom endpoint
    world.kill("c")
    with pytest.raises(FailoverSuccessError):
        await conn.execute("SELECT 1")
    assert conn.instance.instance_id == "d"  # not b (no member), not a (the writer, a member)
    world.kill("d")
    with pytest.raises(FailoverFailedError):
        await conn.execute("SELECT 1")
    assert [c.instance.instance_id for c in world.open_connections()] == []
