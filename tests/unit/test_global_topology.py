"""An Aurora Global Database's topology as aurora_async reads it: the per-region host patterns, every
region's instances with their region, the one global writer."""

from __future__ import annotations

import pytest

from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async._dialect import global_instances, host_builder
from aurora_async._rds_hosts import HostPattern
from aurora_async._topology import Role

GLOBAL = "orders.global-abc123.global.rds.amazonaws.com"
PATTERNS = "us-east-1:?.aaa.us-east-1.rds.amazonaws.com, eu-west-1:?.bbb.eu-west-1.rds.amazonaws.com:6543"


def test_the_per_region_patterns_are_read_from_a_string_or_a_mapping() -> None:
    options = parse(host=GLOBAL, global_cluster_instance_host_patterns=PATTERNS).options
    assert options.global_cluster_instance_host_patterns == (
        ("eu-west-1", HostPattern("?.bbb.eu-west-1.rds.amazonaws.com", 6543)),
        ("us-east-1", HostPattern("?.aaa.us-east-1.rds.amazonaws.com")),
    )
    mapping = {
        "us-east-1": "?.aaa.us-east-1.rds.amazonaws.com",
        "eu-west-1": "?.bbb.eu-west-1.rds.amazonaws.com:6543",
    }
    assert parse(host=GLOBAL, global_cluster_instance_host_patterns=mapping).options == options
    for bad in ("?.aaa.us-east-1.rds.amazonaws.com", "us-east-1:", "us-east-1:no-question-mark.example.com"):
        with pytest.raises(ConfigurationError, match="global_cluster_instance_host_patterns"):
            parse(host=GLOBAL, global_cluster_instance_host_patterns=bad)


def test_every_regions_instances_with_their_region_and_the_one_global_writer() -> None:
    regional = parse(host=GLOBAL, global_cluster_instance_host_patterns=PATTERNS).options
    build = host_builder(None, GLOBAL, 5432, regional.global_cluster_instance_host_patterns)
    rows = [
        ("db-1", True, None, "us-east-1"),
        ("db-2", False, 12.0, "us-east-1"),
        ("db-eu-1", False, 480.0, "eu-west-1"),
    ]
    instances = global_instances(rows, build)
    assert instances is not None
    seen = {(i.instance_id, i.role, i.host, i.port, i.region, i.replica_lag_ms) for i in instances}
    assert seen == {
        ("db-1", Role.WRITER, "db-1.aaa.us-east-1.rds.amazonaws.com", 5432, "us-east-1", None),
        ("db-2", Role.READER, "db-2.aaa.us-east-1.rds.amazonaws.com", 5432, "us-east-1", 12.0),
        ("db-eu-1", Role.READER, "db-eu-1.bbb.eu-west-1.rds.amazonaws.com", 6543, "eu-west-1", 480.0),
    }
    assert global_instances([r for r in rows if not r[1]], build) is None  # no writer: unusable
    with pytest.raises(LookupError, match="ap-south-1"):
        build("db-ap", None, None, "ap-south-1")  # a region without a pattern says so
