"""The doctor's pure logic: the report (verdict, exit status, masking, rendering), what each kind of
endpoint implies, a bad option, an instance pattern leading to the wrong instance (instances faked), and
the command line's usage errors. No sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aurora_async._config import parse
from aurora_async._topology import Instance, Role
from aurora_async.doctor import Check, InstanceReport, Report, Status, diagnose
from aurora_async.doctor._cli import main
from aurora_async.doctor._endpoint_checks import check_host
from aurora_async.doctor._instance_checks import check_instances
from aurora_async.doctor._state import Diagnosis
from aurora_async.postgresql.dialects import AuroraPgDialect

REGION_DOMAIN = "abcdefgh.us-east-1.rds.amazonaws.com"


def _report(*checks: Check) -> Report:
    return Report(target="postgresql://app:***@h/db", engine="postgresql", checks=checks)


def test_the_verdict_counts_problems_and_only_a_failure_exits_1() -> None:
    ok = Check("login", Status.OK, "logged in")
    warn = Check("tls", Status.WARN, "plain text", "turn TLS on")
    fail = Check("instance_pattern", Status.FAIL, "leads nowhere", "set the pattern")
    assert _report(ok, Check("blue_green", Status.INFO, "none")).verdict == "OK"
    assert _report(ok, warn).exit_status == 0 and _report(ok, warn).verdict.startswith("1 problem")
    both = _report(ok, warn, fail)
    assert both.exit_status == 1 and both.problems == (warn, fail)
    assert both.verdict == "2 problems (1 failed, 1 warned)"
    text = both.format_text()
    assert "fix: set the pattern" in text and "  2. [fail] instance_pattern: set the pattern" in text
    document = json.loads(both.to_json())
    assert document["exit_status"] == 1 and [c["status"] for c in document["checks"]] == [
        "ok",
        "warn",
        "fail",
    ]


def test_secrets_are_masked_everywhere_in_a_report() -> None:
    secret = "hunter2-secret"
    report = Report(
        target=f"postgresql://app:{secret}@h/db",
        engine="postgresql",
        checks=(Check("login", Status.FAIL, f"refused {secret}", f"not {secret}", {"why": [secret]}),),
        instances=(InstanceReport("a", "writer", "h", 5432, error=f"said {secret}"),),
    ).redacted({secret, ""})
    assert secret not in report.to_json() + report.format_text() + repr(report)
    assert report.check("login").details == {"why": ["***"]}


def _host_check(dsn: str, **options: Any) -> Check:
    diagnosis = Diagnosis(dsn, options, 5.0)
    check_host(diagnosis, parse(dsn, **options))
    [check] = diagnosis.checks
    return check


def test_what_each_kind_of_endpoint_implies() -> None:
    writer = _host_check(f"postgresql://app@db.cluster-{REGION_DOMAIN}/app")
    assert writer.status is Status.OK and f"?.{REGION_DOMAIN}" in writer.summary
    reader = _host_check(f"postgresql://app@db.cluster-ro-{REGION_DOMAIN}/app")
    assert reader.status is Status.OK and "reader_or_writer" in reader.summary
    proxy = _host_check(f"postgresql://app@px.proxy-{REGION_DOMAIN}/app")
    assert proxy.status is Status.INFO and "failover is the proxy's job" in proxy.summary
    instance = _host_check(f"mysql://app@db-1.{REGION_DOMAIN}/app")
    assert instance.status is Status.INFO and "instance 'db-1'" in instance.summary
    global_dsn = "postgresql://app@orders.global-abc123.global.rds.amazonaws.com/app"
    global_db = _host_check(global_dsn)
    assert global_db.status is Status.WARN and "cannot reach the instances" in global_db.summary
    assert global_db.fix and "global_cluster_instance_host_patterns" in global_db.fix
    patterns = "us-east-1:?.abc.us-east-1.rds.amazonaws.com,eu-west-1:?.def.eu-west-1.rds.amazonaws.com"
    covered = _host_check(global_dsn, global_cluster_instance_host_patterns=patterns)
    assert covered.status is Status.OK and "(eu-west-1, us-east-1)" in covered.summary
    limitless = _host_check(f"postgresql://app@db.shardgrp-{REGION_DOMAIN}/app")
    assert limitless.status is Status.WARN and limitless.fix
    ip = _host_check("postgresql://app@10.0.0.5/app", cluster_instance_host_pattern="10.0.0.?")
    assert ip.status is Status.OK and "'10.0.0.?'" in ip.summary


async def test_a_bad_option_fails_with_the_librarys_message_and_nothing_else_runs() -> None:
    report = await diagnose("postgresql://app:pw-123@db.example.com/app", failover_mode="sideways")
    [check] = report.checks
    assert check.name == "config" and check.status is Status.FAIL and report.exit_status == 1
    assert "failover_mode must be one of strict_writer, strict_reader, reader_or_writer" in check.summary
    assert report.target == "postgresql://app:***@db.example.com/app"


async def test_a_pattern_leading_to_the_wrong_instance_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    dsn, pattern = "postgresql://app@10.0.0.1/app", "10.0.0.?"
    config = parse(dsn, cluster_instance_host_pattern=pattern)
    diagnosis = Diagnosis(dsn, {"cluster_instance_host_pattern": pattern}, 5.0)
    answers = {"11": "11", "12": "11"}  # 12's address leads to 11

    async def reach(diagnosis: Any, config: Any, dialect: Any, instance: Instance) -> InstanceReport:
        return InstanceReport(
            instance.instance_id, instance.role.value, instance.host, instance.port, (instance.host,),
            answers[instance.instance_id], 0.1,
        )  # fmt: skip

    monkeypatch.setattr("aurora_async.doctor._instance_checks.reach", reach)
    instances = [
        Instance("11", "10.0.0.11", 5432, Role.WRITER),
        Instance("12", "10.0.0.12", 5432, Role.READER),
    ]
    await check_instances(
        diagnosis, config, AuroraPgDialect(), instances, build=lambda *a: ("", 0), source="the pattern"
    )
    [check] = diagnosis.checks
    assert check.status is Status.FAIL and "wrong instance" in check.summary and "'12'" in check.summary
    assert check.fix and "cluster_instance_host_pattern" in check.fix
    assert check.details["wrong"] == ["12"]
    diagnosis.auth.close()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["postgresql://h/db", "--option", "no-equals"], ["postgresql://h/db", "--timeout", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "NAME=VALUE" in capsys.readouterr().err
