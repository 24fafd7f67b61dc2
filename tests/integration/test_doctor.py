"""``aurora_async doctor`` against the simulator: a healthy cluster, and planted misconfigurations (a
broken instance host pattern, a wrong password, TLS off or unverified, IAM and Secrets Manager), each
found with the right advice; the command line's exit statuses. Assertions read the structured report."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from typing import Any

import pytest

from aurora_async.doctor import Report, Status, diagnose
from aurora_async.testing import AuroraSimulator, RehearsalSession
from tests.aws import put_secret

DIALECTS = {"postgresql": "aurora-pg", "mysql": "aurora-mysql"}
APP_USER = "app_user"
PASSWORD = "Right-Pw-5c1e"
WRONG = "Wr0ng-Pw-9d2f"
IAM_USER = "iam_user"


def _pattern(sim: AuroraSimulator) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern}


def _dsn_as(sim: AuroraSimulator, user: str, password: str | None = None) -> str:
    scheme, rest = sim.dsn("cluster").split("://", 1)
    who = user if password is None else f"{user}:{password}"
    return f"{scheme}://{who}@{rest.split('@', 1)[1]}"


def _statuses(report: Report) -> dict[str, Status]:
    return {check.name: check.status for check in report.checks}


def _verifying(sim: AuroraSimulator) -> ssl.SSLContext:
    assert sim.tls_root_cert is not None
    return ssl.create_default_context(cafile=str(sim.tls_root_cert))


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aurora_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_healthy_cluster_is_ok_with_every_instance_and_its_role(sim: AuroraSimulator) -> None:
    report = await diagnose(sim.dsn("cluster"), **_pattern(sim))
    assert report.exit_status == 0 and not report.failed, report.format_text()
    assert report.dialect == DIALECTS[sim.engine] and report.engine == sim.engine
    statuses = _statuses(report)
    for name in ("config", "host", "dns", "login", "dialect", "topology", "instance_pattern"):
        assert statuses[name] is Status.OK, report.format_text()
    assert statuses["blue_green"] is Status.INFO and report.check("blue_green").details["present"] is False
    assert statuses["global_database"] is Status.INFO, report.format_text()  # one region
    roles = {i.instance_id: i.role for i in report.instances}
    assert roles == {i: "writer" if i == sim.writer_id else "reader" for i in sim.instance_ids}
    assert all(i.reached and i.rtt_ms is not None and i.error is None for i in report.instances)
    assert report.check("topology").details["writer"] == sim.writer_id
    # the default simulator speaks plain text only: a warning with its fix, not a failure
    tls = report.check("tls")
    assert tls.status is Status.WARN and tls.fix and "TLS" in tls.fix
    assert tls.details["server_offers_tls"] is False and tls.details["negotiated"] is None
    assert report.problems == (tls,) and report.verdict.startswith("1 problem")
    assert report.elapsed < 5.0
    text = report.format_text()
    assert all(f"  {i}  " in text for i in sim.instance_ids) and "verdict: 1 problem" in text


async def test_a_pattern_with_the_wrong_port_fails_and_names_the_right_one(sim: AuroraSimulator) -> None:
    broken = sim.instance_host_pattern.rsplit(":", 1)[0] + ":1"
    report = await diagnose(sim.dsn("cluster"), cluster_instance_host_pattern=broken)
    check = report.check("instance_pattern")
    assert check.status is Status.FAIL and report.exit_status == 1
    assert broken in check.summary and "leads nowhere" in check.summary
    assert check.fix is not None and f"'{sim.instance_host_pattern}'" in check.fix
    assert not any(i.reached for i in report.instances)
    assert report.check("login").status is Status.OK  # the endpoint itself works


async def test_a_pattern_with_the_wrong_address_fails_with_the_rule(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    broken = "127.0.43.?"  # no instance listens there (the port defaults to the endpoint's)
    report = await diagnose(sim.dsn("cluster"), cluster_instance_host_pattern=broken)
    check = report.check("instance_pattern")
    assert check.status is Status.FAIL and broken in check.summary
    assert check.fix is not None and "cluster_instance_host_pattern" in check.fix and "'?'" in check.fix
    assert {i.endpoint for i in report.instances} == {f"127.0.43.{i}:{sim.port}" for i in sim.instance_ids}
    # and without any pattern, an IP address endpoint leaves the instances without an address
    bare = await diagnose(sim.dsn("cluster"))
    missing = bare.check("instance_pattern")
    assert missing.status is Status.FAIL and missing.fix and "cluster_instance_host_pattern" in missing.fix


async def test_a_wrong_password_fails_the_login_and_never_shows(sim: AuroraSimulator) -> None:
    await sim.set_password(APP_USER, PASSWORD)
    report = await diagnose(_dsn_as(sim, APP_USER, WRONG), **_pattern(sim))
    login = report.check("login")
    assert login.status is Status.FAIL and report.exit_status == 1
    message = "password authentication failed" if sim.engine == "postgresql" else "Access denied"
    assert message in login.summary and login.fix and "password" in login.fix
    assert report.check("dialect").status is Status.SKIP and report.instances == ()
    everything = report.format_text() + report.to_json() + repr(report)
    assert WRONG not in everything and PASSWORD not in everything and ":***@" in report.target
    # the right password: logged in
    assert (await diagnose(_dsn_as(sim, APP_USER, PASSWORD), **_pattern(sim))).exit_status == 0


@pytest.mark.aurora_simulator(tls=True)
async def test_tls_is_reported_verified_or_not(sim: AuroraSimulator) -> None:
    verified = await diagnose(sim.dsn("cluster"), ssl=_verifying(sim), **_pattern(sim))
    tls = verified.check("tls")
    assert tls.status is Status.OK and verified.exit_status == 0 and not verified.problems
    assert tls.details["verified"] is True and str(tls.details["negotiated"]).startswith("TLSv1")
    assert tls.details["server_offers_tls"] is True
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    unverified = (await diagnose(sim.dsn("cluster"), ssl=unchecked, **_pattern(sim))).check("tls")
    assert unverified.status is Status.WARN and "NOT verified" in unverified.summary
    assert unverified.details["negotiated"] and unverified.details["verified"] is False
    assert unverified.fix and "global-bundle.pem" in unverified.fix
    # the driver's default: PostgreSQL's "prefer" (TLS, unverified), aiomysql's none (plain text)
    default = (await diagnose(sim.dsn("cluster"), **_pattern(sim))).check("tls")
    assert default.status is Status.WARN and default.details["verified"] is False
    assert default.details["server_accepts_plaintext"] is True


@pytest.mark.usefixtures("moto_endpoint")
async def test_iam_token_is_generated_and_logs_in_without_showing(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    session = RehearsalSession(sim, IAM_USER)  # every token becomes the user's password
    options = {
        "plugins": "failover,iam",
        "iam_region": "us-east-1",
        "iam_host": "db.test.internal",
        "iam_allow_plaintext": "true",  # the simulator speaks no TLS
        "aws_session": session,
        **_pattern(sim),
    }
    report = await diagnose(_dsn_as(sim, IAM_USER), **options)
    credentials = report.check("credentials")
    assert credentials.status is Status.OK and "IAM token generated" in credentials.summary
    assert report.check("login").status is Status.OK and report.exit_status == 0
    assert session.calls["generate_db_auth_token"] == 1  # one token for the login and every instance
    tls = report.check("tls")
    assert tls.status is Status.WARN and "IAM token travels in clear text" in tls.summary
    token = session.last_token
    assert token is not None and token not in report.to_json() + report.format_text()
    # a database user the tokens are not for: the login fails with IAM's fix
    refused = await diagnose(_dsn_as(sim, "not_iam"), **options)
    assert refused.check("credentials").status is Status.OK
    login = refused.check("login")
    assert login.status is Status.FAIL and login.fix and "rds_iam" in login.fix


@pytest.mark.aurora_simulator(tls=True)
@pytest.mark.usefixtures("moto_endpoint")
async def test_iam_on_mysql_over_verified_tls(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    await sim.create_iam_user(IAM_USER)
    session = RehearsalSession(sim, IAM_USER)
    report = await diagnose(
        _dsn_as(sim, IAM_USER),
        plugins="failover,iam",
        iam_region="us-east-1",
        iam_host="db.test.internal",
        aws_session=session,
        ssl=_verifying(sim),
        **_pattern(sim),
    )
    assert report.exit_status == 0 and not report.problems, report.format_text()
    assert report.check("credentials").status is Status.OK and report.check("tls").details["verified"]
    assert sim.iam_login_attempts() and all(a.accepted for a in sim.iam_login_attempts())
    assert session.last_token is not None and session.last_token not in report.to_json()


@pytest.mark.usefixtures("moto_endpoint")
async def test_secrets_manager_fetch_and_login(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    await sim.set_password(APP_USER, PASSWORD)
    arn = await put_secret("doctor/app", json.dumps({"username": APP_USER, "password": PASSWORD}))
    host, port = sim.cluster_endpoint.rsplit(":", 1)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "database": "postgres",
        "plugins": "aws_secrets_manager",
    }
    report = await diagnose(
        None, secrets_manager_secret_id=arn, secrets_manager_region="us-east-1", **options
    )
    credentials = report.check("credentials")
    assert credentials.status is Status.OK and repr(APP_USER) in credentials.summary
    assert report.check("login").status is Status.OK and PASSWORD not in report.to_json()
    missing = await diagnose(
        None, secrets_manager_secret_id="doctor/none", secrets_manager_region="us-east-1", **options
    )
    assert missing.check("credentials").status is Status.FAIL and missing.check("login").status is Status.SKIP


async def test_the_command_line_exits_with_the_verdict(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    pattern = f"cluster_instance_host_pattern={sim.instance_host_pattern}"
    status, out, _ = await _cli("doctor", sim.dsn("cluster"), "--option", pattern, "--json")
    assert status == 0, out
    document = json.loads(out)
    assert document["dialect"] == "aurora-pg" and document["exit_status"] == 0
    assert {i["instance_id"] for i in document["instances"]} == set(sim.instance_ids)
    broken = "cluster_instance_host_pattern=127.0.42.?:1"
    status, out, _ = await _cli("doctor", sim.dsn("cluster"), "-o", broken, "--timeout", "2")
    assert status == 1 and "FAIL  instance_pattern" in out and "verdict: 2 problems" in out
    await sim.set_password(APP_USER, PASSWORD)
    status, out, err = await _cli("doctor", _dsn_as(sim, APP_USER, WRONG), "-o", pattern)
    assert status == 1 and "FAIL  login" in out and WRONG not in out + err
    status, out, err = await _cli("doctor", sim.dsn("cluster"), "--option", "no-equals-sign")
    assert status == 2 and "NAME=VALUE" in err
    status, _, err = await _cli("doctor")
    assert status == 2 and "dsn" in err
