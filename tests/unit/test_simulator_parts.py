"""Pieces of the simulator that need no server: catalog documents, reports, argument checks."""

from __future__ import annotations

import json
import os

import pytest

from aurora_async.testing import FailoverDelays, FailoverReport, SimulatorError, TimelineEvent
from aurora_async.testing._catalog import TopologyRow
from aurora_async.testing._process import OsUser
from aurora_async.testing.postgresql._catalog import (
    database_setup_sql,
    instance_settings,
    set_topology_sql,
    sql_literal,
    topology_document,
)
from aurora_async.testing.simulator._network import check_prefix


def _row(instance_id: str, writer: bool = False, frozen_at: float | None = None) -> TopologyRow:
    return TopologyRow(
        instance_id=instance_id,
        is_writer=writer,
        session_id="MASTER_SESSION_ID" if writer else f"s-{instance_id}",
        dbi_resource_id=f"db-{instance_id}",
        endpoint=f"{instance_id}.x.sim.invalid",
        port=5432,
        frozen_at=frozen_at,
        replica_lag_ms=None if writer else 9.0,
    )


def test_topology_document_round_trips() -> None:
    doc = json.loads(topology_document([_row("11", writer=True), _row("12", frozen_at=1700000000.5)]))
    assert [i["id"] for i in doc["instances"]] == ["11", "12"]
    assert doc["instances"][0] == {
        "id": "11", "writer": True, "session_id": "MASTER_SESSION_ID", "dbi": "db-11",
        "endpoint": "11.x.sim.invalid", "port": 5432, "frozen_at": None, "lag_ms": None, "cpu": 1.0,
        "region": None,
    }  # fmt: skip
    assert doc["instances"][1]["frozen_at"] == 1700000000.5


def test_sql_literals_are_quoted() -> None:
    assert sql_literal("it's") == "'it''s'"
    statement = set_topology_sql([_row("11", writer=True)])
    assert statement.startswith("COMMENT ON ROLE aurora_simulator IS '{")


def test_catalog_sql_per_topology_mode() -> None:
    aurora = database_setup_sql("aurora")
    assert "pg_catalog.aurora_replica_status()" in aurora and "rds_tools" not in aurora.split("$$")[0]
    multi_az = database_setup_sql("multi-az")
    assert "rds_tools.show_topology" in multi_az and "aurora_replica_status" not in multi_az
    assert database_setup_sql("none") == ""
    assert "aurora_stat_utils" in instance_settings("aurora", "11", "db-1")["rds.extensions"]
    assert "aurora_stat_utils" not in instance_settings("multi-az", "11", "db-1")["rds.extensions"]
    assert "rds.extensions" not in instance_settings("none", "11", "db-1")


def test_failover_report_durations_and_format() -> None:
    events = [
        TimelineEvent(10.1, "writer lost", "11 crashed"),
        TimelineEvent(10.4, "replica promoted", "12 is the writer"),
        TimelineEvent(10.5, "topology updated"),
    ]
    report = FailoverReport("failover", "11", "12", 10.0, events)
    assert report.durations() == pytest.approx(
        {"writer lost": 0.1, "replica promoted": 0.3, "topology updated": 0.1}
    )
    assert report.offset(events[1]) == pytest.approx(0.4)
    text = report.format()
    assert text.splitlines()[0] == "failover: writer 11 -> 12"
    assert "+   400.0 ms" in text and "replica promoted: 12 is the writer" in text


def test_failover_delays_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="FailoverDelays.rejoin must be >= 0"):
        FailoverDelays(rejoin=-0.1)


@pytest.mark.parametrize("prefix", ["127.0.42.", "127.1.2", "127.255.255."])
def test_loopback_prefixes_are_accepted(prefix: str) -> None:
    assert check_prefix(prefix).endswith(".")


@pytest.mark.parametrize("prefix", ["192.168.1.", "127.0.", "localhost.", "::1"])
def test_other_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="address_prefix"):
        check_prefix(prefix)


def test_server_user_rules() -> None:
    if os.geteuid() == 0:
        assert OsUser.for_servers().name in ("postgres", "nobody")
        with pytest.raises(SimulatorError, match="cannot run as root"):
            OsUser.for_servers("root")
    else:
        assert OsUser.for_servers().is_current
    with pytest.raises(SimulatorError, match="does not exist"):
        OsUser.for_servers("no-such-user-here")
