"""An Aurora Global Database's home-region failover modes (``_global_failover``): the options as read,
their defaults, which mode a failover runs in and which instances each mode allows; then, on the fake
driver, what a connection's failover makes of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from aurora_async import ConfigurationError
from aurora_async._cluster import Cluster
from aurora_async._config import parse
from aurora_async._exceptions import FailoverFailedError, FailoverSuccessError
from aurora_async._global_failover import (
    DEFAULT_FOR,
    GlobalTarget,
    HomeModes,
    default_home_region,
    spans_regions,
)
from aurora_async._options import GLOBAL_FAILOVER_MODES, GlobalFailoverMode
from aurora_async._topology import Instance, Role, Topology
from aurora_async.postgresql.connection import AuroraConnection

from .fake_driver import PORT, FakeCluster, FakeReadOnlyError, elapse, fake_world, make_cluster

HOME, AWAY = "us-east-1", "eu-west-1"
GLOBAL = "orders.global-abc123.global.rds.amazonaws.com"
REGIONAL = "orders.cluster-ro-def456.eu-west-1.rds.amazonaws.com"


def _instance(instance_id: str, role: Role, region: str | None) -> Instance:
    return Instance(instance_id, f"{instance_id}.example", 5432, role, region=region)


def _topology(writer_region: str) -> Topology:
    """Two regions, two instances each; the global writer in ``writer_region``."""
    rows = [("h1", HOME), ("h2", HOME), ("a1", AWAY), ("a2", AWAY)]
    writer = next(i for i, region in rows if region == writer_region)
    return Topology(
        1, tuple(_instance(i, Role.WRITER if i == writer else Role.READER, r) for i, r in rows), 0.0
    )


# -- the options -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", GLOBAL_FAILOVER_MODES)
def test_each_mode_is_read_with_underscores_dashes_and_any_case(mode: str) -> None:
    for spelt in (mode, mode.replace("_", "-"), mode.upper()):
        options = parse(
            host=GLOBAL, active_home_failover_mode=spelt, inactive_home_failover_mode=spelt
        ).options
        assert options.active_home_failover_mode == mode and options.inactive_home_failover_mode == mode
    dsn = f"postgresql://app@{GLOBAL}/db?active_home_failover_mode={mode.replace('_', '-')}"
    assert parse(dsn).options.active_home_failover_mode == mode


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "active_home_failover_mode",
            "strict_reader",
            "active_home_failover_mode must be one of strict_writer",
        ),
        ("inactive_home_failover_mode", "home", "inactive_home_failover_mode must be one of strict_writer"),
        ("active_home_failover_mode", "", "any_reader_or_writer, not ''"),
        ("failover_home_region", "us-east", "failover_home_region must be an AWS region"),
        ("failover_home_region", "", "failover_home_region must be an AWS region"),
        ("failover_home_region", 1, "failover_home_region must be an AWS region"),
    ],
)
def test_a_bad_value_is_refused_at_connect_naming_the_option(name: str, value: Any, message: str) -> None:
    # on any cluster: the options are checked before the cluster is known to be a Global Database
    for host in (GLOBAL, "10.0.0.7"):
        with pytest.raises(ConfigurationError, match=message) as caught:
            parse(host=host, **{name: value})
        assert isinstance(caught.value, ValueError)


def test_nothing_is_set_by_default_and_a_region_is_read_in_lower_case() -> None:
    options = parse(host=GLOBAL).options
    assert options.failover_home_region is None
    assert options.active_home_failover_mode is None and options.inactive_home_failover_mode is None
    for region in ("us-gov-west-1", "cn-north-1", " EU-West-1 ", "ap-southeast-5"):
        assert parse(host=GLOBAL, failover_home_region=region).options.failover_home_region == (
            region.strip().lower()
        )


@pytest.mark.parametrize(
    ("failover_mode", "derived"),
    [
        ("strict_writer", "strict_writer"),
        ("strict_reader", "strict_home_reader"),
        ("reader_or_writer", "home_reader_or_writer"),
    ],
)
def test_a_mode_not_given_comes_from_failover_mode(failover_mode: str, derived: str) -> None:
    options = parse(host=GLOBAL, failover_mode=failover_mode).options
    assert DEFAULT_FOR[options.failover_mode] == derived
    assert HomeModes.of(options, HOME, options.failover_mode) == HomeModes(HOME, derived, derived)
    given = parse(host=GLOBAL, failover_mode=failover_mode, inactive_home_failover_mode="strict_any_reader")
    modes = HomeModes.of(given.options, HOME, given.options.failover_mode)
    assert modes == HomeModes(HOME, derived, "strict_any_reader")
    # a session moved to a reader by read/write splitting: both from its mode, whatever was given
    moved = HomeModes.of(given.options, HOME, "reader_or_writer", given=False)
    assert moved == HomeModes(HOME, "home_reader_or_writer", "home_reader_or_writer")


def test_the_home_region_by_default_is_the_host_names_else_the_global_writers() -> None:
    us_writer, eu_writer = _topology(HOME), _topology(AWAY)
    reached = _instance("a1", Role.READER, AWAY)
    assert default_home_region(REGIONAL, us_writer, None) == AWAY  # a regional endpoint names one
    assert default_home_region(f"db-1.abc.{HOME}.rds.amazonaws.com", eu_writer, None) == HOME
    for host in (GLOBAL, "10.0.0.7", "db.example.com"):  # no region in the name: the global writer's
        assert default_home_region(host, us_writer, reached) == HOME
        assert default_home_region(host, eu_writer, reached) == AWAY
        assert default_home_region(host, None, reached) == AWAY  # (no topology: where it landed)
        assert default_home_region(host, None, None) is None


def test_only_a_topology_with_regions_is_a_global_databases() -> None:
    assert spans_regions(_topology(HOME))
    plain = Topology(1, (_instance("x", Role.WRITER, None), _instance("y", Role.READER, None)), 0.0)
    assert not spans_regions(plain) and not spans_regions(None)


# -- active or inactive --------------------------------------------------------------------------------


def test_the_global_writers_region_chooses_the_active_or_the_inactive_mode() -> None:
    modes = HomeModes(HOME, "strict_home_reader", "strict_any_reader")
    at_home = modes.target(_topology(HOME).writer)
    away = modes.target(_topology(AWAY).writer)
    unknown = modes.target(None)
    assert (at_home.mode, at_home.active, at_home.option) == (
        "strict_home_reader",
        True,
        "active_home_failover_mode",
    )
    assert (away.mode, away.active, away.option) == (
        "strict_any_reader",
        False,
        "inactive_home_failover_mode",
    )
    assert unknown == away  # a writer of unknown region is not at home
    assert "inactive_home_failover_mode=strict_any_reader" in away.describe() and HOME in away.describe()
    other_home = HomeModes(AWAY, "strict_home_reader", "strict_any_reader")
    assert other_home.target(_topology(AWAY).writer).active  # home is whatever the connection says


# -- the instances each mode allows ---------------------------------------------------------------------

# (mode) -> (the instances it allows, by region and role), for the home region HOME; the oracle is
# written out here rather than derived from the code under test
ALLOWED: dict[str, set[tuple[str, Role]]] = {
    "strict_writer": {(HOME, Role.WRITER), (AWAY, Role.WRITER)},
    "strict_home_reader": {(HOME, Role.READER)},
    "strict_out_of_home_reader": {(AWAY, Role.READER)},
    "strict_any_reader": {(HOME, Role.READER), (AWAY, Role.READER)},
    "home_reader_or_writer": {(HOME, Role.READER), (HOME, Role.WRITER), (AWAY, Role.WRITER)},
    "out_of_home_reader_or_writer": {(AWAY, Role.READER), (HOME, Role.WRITER), (AWAY, Role.WRITER)},
    "any_reader_or_writer": {
        (HOME, Role.READER),
        (AWAY, Role.READER),
        (HOME, Role.WRITER),
        (AWAY, Role.WRITER),
    },
}


@pytest.mark.parametrize("writer_region", [HOME, AWAY])
@pytest.mark.parametrize("mode", GLOBAL_FAILOVER_MODES)
def test_each_mode_allows_its_instances_over_two_regions(
    mode: GlobalFailoverMode, writer_region: str
) -> None:
    topology = _topology(writer_region)
    target = GlobalTarget(mode, HOME, writer_region == HOME)
    allowed = target.candidates(topology)
    assert allowed == [i for i in topology.instances if target.allows(i)]
    assert {(i.region, i.role) for i in allowed} == {
        (i.region, i.role) for i in topology.instances if (i.region, i.role) in ALLOWED[mode]
    }
    assert allowed  # two regions, a reader in each: every mode has somewhere to go
    # strict modes check a reader's role; the others take the writer and check none
    if mode == "strict_writer":
        assert target.wants_writer and [i.role for i in allowed] == [Role.WRITER]
    else:
        assert not target.wants_writer
        assert target.reader_mode == ("strict_reader" if mode.startswith("strict_") else "reader_or_writer")


def test_a_reader_of_unknown_region_is_neither_home_nor_away() -> None:
    stray = _instance("s", Role.READER, None)
    allows = {m: GlobalTarget(m, HOME, True).allows(stray) for m in GLOBAL_FAILOVER_MODES}
    assert {m for m, yes in allows.items() if yes} == {"strict_any_reader", "any_reader_or_writer"}


# -- a connection's failover, on the fake driver --------------------------------------------------------

REGIONS = {"a": HOME, "b": HOME, "c": AWAY, "d": AWAY}


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world(("a", "b", "c", "d"), writer="a") as world:
        world.regions = dict(REGIONS)
        yield world


async def _open(world: FakeCluster, on: str = "a", **options: Any) -> tuple[AuroraConnection, Cluster]:
    """An application connection on instance ``on``, its cluster held by it alone."""
    options.setdefault("plugins", "failover")
    options.setdefault("failover_timeout", 5.0)
    cluster, config = make_cluster(world, **options)
    raw = await cluster.opener.open_as(config.identity, world[on].host, PORT, 1.0)
    assert cluster.topology is not None
    instance = cluster.topology.get(on)
    assert instance is not None
    return AuroraConnection(cluster, config, cast(Any, raw), instance), cluster


async def test_after_the_home_region_is_lost_each_connection_fails_over_by_its_inactive_mode(
    world: FakeCluster,
) -> None:
    """Three connections on the writer, with the default home region (the fake's host names none: the
    global writer's when they opened, us-east-1), differing only in inactive_home_failover_mode; then
    the home region is lost and the other region's instance promoted."""
    writer, _ = await _open(world)  # (failover_mode strict_writer: both modes strict_writer)
    reader, _ = await _open(world, inactive_home_failover_mode="strict-any-reader")
    stuck, _ = await _open(world, inactive_home_failover_mode="strict_home_reader", failover_timeout=2)
    assert {c._home_region for c in (writer, reader, stuck)} == {HOME}
    await elapse(1.0)  # (the virtual clock stands still: the failure comes after the writer's last proof)
    world.kill("a")
    world.kill("b")
    world.promote("c")
    with pytest.raises(FailoverSuccessError, match="by inactive_home_failover_mode=strict_writer"):
        await writer.execute("INSERT INTO t VALUES (1)")
    assert (writer.instance.instance_id, writer.instance.role) == ("c", Role.WRITER)
    with pytest.raises(FailoverSuccessError, match=r"now on d \(reader in eu-west-1, by inactive_home"):
        await reader.execute("SELECT 1")
    assert (reader.instance.instance_id, reader.instance.region) == ("d", AWAY)
    assert world["d"].queries["is_reader"] >= 1  # a strict mode checks the reader's role
    with pytest.raises(FailoverFailedError) as caught:
        await stuck.execute("SELECT 1")
    message = str(caught.value)
    assert "no reader in home region us-east-1 could be reached within failover_timeout=2 s" in message
    assert "inactive_home_failover_mode=strict_home_reader" in message and stuck.is_closed()
    for conn in (writer, reader):
        await conn.close()


@pytest.mark.parametrize(
    ("mode", "lands_on"),
    [
        ("home_reader_or_writer", {"a"}),  # the home reader is down: the writer, at home too
        ("strict_home_reader", {"b"}),
        ("strict_out_of_home_reader", {"c", "d"}),
        ("strict_any_reader", {"b", "c", "d"}),
        ("out_of_home_reader_or_writer", {"a", "c", "d"}),
    ],
)
async def test_a_readers_failure_asks_the_topology_where_the_writer_is(
    world: FakeCluster, mode: str, lands_on: set[str]
) -> None:
    """A reader (b, at home) fails while the writer stays: the mode comes from the topology's writer
    (at home: the active one), with no writer search."""
    world.instances["e"] = type(world["a"])("e")  # a second home reader, for strict_home_reader
    world.regions["e"] = HOME
    conn, cluster = await _open(
        world, on="e", failover_mode="reader_or_writer", active_home_failover_mode=mode
    )
    if mode == "home_reader_or_writer":
        world.kill("b")
    world.kill("e")
    with pytest.raises(FailoverSuccessError, match=f"by active_home_failover_mode={mode}"):
        await conn.execute("SELECT 1")
    assert conn.instance.instance_id in lands_on
    assert cluster.stats["writer_searches"] == 0
    await conn.close()


async def test_a_read_only_error_fails_over_only_when_the_mode_now_is_strict_writer(
    world: FakeCluster,
) -> None:
    """The mode for the global writer where it is now decides, whatever failover_mode says."""
    follows, _ = await _open(
        world, failover_mode="reader_or_writer", active_home_failover_mode="strict_writer"
    )
    stays, _ = await _open(world, active_home_failover_mode="home_reader_or_writer")
    await elapse(1.0)
    world.promote("b")  # a is demoted, still up: it refuses writes; the new writer is at home too
    with pytest.raises(FailoverSuccessError, match="by active_home_failover_mode=strict_writer"):
        await follows.execute("INSERT INTO t VALUES (1)")
    assert follows.instance.instance_id == "b"
    raw = stays.raw
    with pytest.raises(FakeReadOnlyError):
        await stays.execute("INSERT INTO t VALUES (1)")
    assert stays.raw is raw and stays.instance.instance_id == "a"  # no failover
    for conn in (follows, stays):
        await conn.close()


async def test_without_regions_the_modes_are_ignored(world: FakeCluster) -> None:
    world.regions = {}  # an Aurora cluster of one region: the topology names none
    conn, _ = await _open(
        world, active_home_failover_mode="strict_out_of_home_reader", failover_home_region=AWAY
    )
    world.kill("a")
    world.promote("c")
    with pytest.raises(FailoverSuccessError) as caught:
        await conn.execute("SELECT 1")
    assert (conn.instance.instance_id, conn.instance.role) == ("c", Role.WRITER)  # failover_mode's
    assert "home" not in str(caught.value)
    await conn.close()
