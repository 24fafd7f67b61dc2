"""The examples run as users would run them, against the simulator."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def _run(script: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_demo_shows_aurora_workers_recovering_before_plain_ones(engine: str) -> None:
    text = await _run("demo.py", "--engine", engine)
    ours = [int(m) for m in re.findall(r"aurora-\d .*\| gap +(\d+) ms", text)]
    plain = [int(m) for m in re.findall(r"plain-\d .*\| gap +(\d+) ms", text)]
    assert len(ours) == 4 and len(plain) == 4, text
    assert max(ours) < min(plain), text  # stale DNS holds the plain workers back
    found = re.search(r"(\d+) inserts acknowledged, (\d+) in flight .*, (\d+) rows", text)
    assert found, text
    acknowledged, unknown, stored = map(int, found.groups())
    # every acknowledged insert is stored; an in-flight one may or may not be (never more than those)
    assert acknowledged <= stored <= acknowledged + unknown, text


BOTH = pytest.mark.parametrize("engine", ["postgresql", "mysql"])


@BOTH
async def test_blue_green_example_pauses_bg_workers_where_plain_ones_fail(engine: str) -> None:
    text = await _run("blue_green.py", "--engine", engine)
    assert "blue/green SWITCHOVER_COMPLETED" in text, text
    rows = re.findall(
        r"(aurora|plain)-\d +(\d+) writes, +(\d+) failed, longest pause +(\d+) ms, ends on (\d+)", text
    )
    assert len(rows) == 6, text
    green = re.search(r"green's writer is (\d+)", text)
    assert green, text
    for kind, writes, failed, _pause, on in rows:
        assert on == green.group(1) and int(writes) > 0, text  # everyone ends writing on green
        if kind == "aurora":
            assert failed == "0", text  # the bg plugin: a pause, no failed insert
    assert any(kind == "plain" and int(failed) > 0 for kind, _w, failed, _p, _o in rows), text


@BOTH
async def test_simulator_tour(engine: str) -> None:
    text = await _run("simulator_tour.py", "--engine", engine)
    assert "replica promoted" in text and "Cluster stopped and removed." in text
    found = re.search(r"(\d+) inserts acknowledged, (\d+) rows on the new writer", text)
    assert found, text
    acknowledged, stored = int(found.group(1)), int(found.group(2))
    # every acknowledged insert survives; the one in flight when the writer crashed may have committed
    # without its acknowledgement reaching the client (the plain client inserts one at a time)
    assert 0 < acknowledged <= stored <= acknowledged + 1, text


@BOTH
async def test_host_monitoring_example_cuts_the_silent_query_short(engine: str) -> None:
    text = await _run("host_monitoring.py", "--engine", engine, "--watch-plain", "5")
    seconds = float(re.search(r"aurora_async: cut short after ([\d.]+) s", text).group(1))  # type: ignore[union-attr]
    assert seconds < 5, text
    assert "aurora_async: report done on 1" in text and "still waiting on the silent socket" in text, text


@BOTH
async def test_custom_endpoint_example_keeps_each_workload_on_its_instances(engine: str) -> None:
    text = await _run("custom_endpoint.py", "--engine", engine)
    assert "oltp on 11, analytics report on 13" in text, text
    assert "after a failover to 12: oltp on 12, report on 13" in text, text
    assert "13 crashed: report on 11 (a member, a replica), oltp on 12" in text, text


async def test_iam_example_generates_one_token_through_a_failover() -> None:
    text = await _run("iam_auth.py")
    assert "50 connections as app_user: 1 token generated" in text, text
    assert "authenticated with the cached token" in text and "tokens generated in all: 1" in text, text


async def test_mysql_iam_example_logs_in_with_clear_password_and_one_token_through_a_failover() -> None:
    text = await _run("iam_auth_mysql.py")
    assert "50 connections as app_user@% (mysql_clear_password over TLS): 1 token generated" in text, text
    assert "authenticated as app_user@% with the cached token" in text, text
    assert "tokens generated in all: 1" in text and "tokens the servers refused: 0" in text, text


@BOTH
async def test_secrets_manager_example_survives_rotation_with_one_refetch(engine: str) -> None:
    text = await _run("secrets_manager.py", "--engine", engine)
    assert "50 connections as shop: 1 GetSecretValue call" in text, text
    assert "GetSecretValue calls in all: 2" in text, text


async def test_mysql_example_stores_every_order_once_through_a_failover() -> None:
    text = await _run("mysql_failover.py")
    found = re.search(r"failover: (\d+) -> (\d+)", text)
    assert found, text
    assert "480 orders sent, 480 stored (480 distinct)" in text, text
    assert f"on {{'{found.group(2)}'}}" in text, text  # every worker ended on the new writer


@BOTH
async def test_rds_proxy_example_stores_every_order_without_going_around_the_proxy(engine: str) -> None:
    text = await _run("rds_proxy.py", "--engine", engine)
    found = re.search(r"failover: (\d+) -> (\d+)", text)
    assert found, text
    assert "360 orders sent, 360 stored" in text, text
    assert f"workers ended on {{'{found.group(2)}'}}" in text, text
    assert "connections that went around the proxy: 0" in text, text


@BOTH
async def test_data_api_example_stores_reads_waits_and_pages(engine: str) -> None:
    text = await _run("data_api.py", "--engine", engine)
    assert text.count("order ") == 2 and "values came back with their types: True" in text, text
    assert re.search(r"paused cluster: 3 orders counted after (1\.\d|[2-9]\.\d) s of retries", text), text
    assert "large result: 5000 rows" in text, text


async def test_drop_in_asyncpg_example_rides_a_failover_with_unchanged_asyncpg_code() -> None:
    text = await _run("drop_in_asyncpg.py")
    assert "save(2) took 2 attempts; the connection is on 12" in text, text
    assert "listener heard: 'after the failover'" in text and "rows: 2" in text, text


async def test_drop_in_aiomysql_example_rides_a_failover_with_unchanged_aiomysql_code() -> None:
    text = await _run("drop_in_aiomysql.py")
    assert "save(2) took 2 attempts; the connection is on 12" in text, text
    assert "the cursor made before the failover reads from 12" in text and "rows: 2" in text, text


@BOTH
async def test_global_database_example_follows_the_writer_across_regions(engine: str) -> None:
    text = await _run("global_database.py", "--engine", engine)
    assert "global-aurora-" in text, text
    rows = re.findall(
        r"aurora-\d +(\d+) acknowledged, (\d+) failover error\(s\), on (\d+) \(([\w-]+)\)", text
    )
    assert len(rows) == 6, text
    after_switchover, after_failover = rows[:3], rows[3:]
    assert all((on, region) == ("111", "eu-west-1") for _a, _f, on, region in after_switchover), text
    assert all((on, region) == ("11", "us-east-1") for _a, _f, on, region in after_failover), text
    # one failover error per connection and move: nothing else failed
    assert [int(f) for _a, f, _o, _r in rows] == [1, 1, 1, 2, 2, 2], text
    found = re.search(r"(\d+) inserts acknowledged, (\d+) stored, (\d+) lost", text)
    assert found, text
    acknowledged, stored, lost = map(int, found.groups())
    assert acknowledged == stored + lost and lost > 0, text  # only the held tail is lost
