"""The ``aurora-data-api`` client's own test suite against :class:`DataApiEmulator`.

``aurora-data-api`` (PyPI, by other authors) is a synchronous DB-API driver over boto3's ``rds-data``
client, and its ``test/test.py`` was last re-validated by its authors against the live Data API v2
(release 0.5.0). Its source distribution is downloaded at run time with pip, extracted under
``workdir`` and the package installed into a private directory (``workdir/site``); nothing of it is
kept in this repository. The suite then runs in a pytest subprocess whose boto3 is pointed at an
emulator on loopback (``AWS_ENDPOINT_URL_RDS_DATA``, dummy credentials) over a one-instance simulator,
with the cluster ARN, secret ARN and database the suite reads from ``AURORA_CLUSTER_ARN``,
``AURORA_SECRET_ARN`` and ``AURORA_DB_NAME``.

``test_continue_after_timeout`` runs only when ``TEST_CONTINUE_AFTER_TIMEOUT=True`` (it waits out the
45 s statement timeout twice); the variable is never passed on, so the suite skips it, as it does
``test_pagination_backoff`` (skipped unconditionally by the suite).

From a shell: ``python -m compat.data_api_suite --engine postgresql`` (or ``mysql``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator

from ._suites import PIP_TIMEOUT, counts, directory, fetch_sdist, run, run_pytest

PACKAGE = "aurora-data-api"
VERSION = "0.5.0"
REQUIREMENT = f"{PACKAGE}=={VERSION}"
SUITE = "test/test.py"  # inside the extracted source distribution
DATABASE = "data_api_suite"  # created by the simulator, on both engines
ENGINES = ("postgresql", "mysql")
SUITE_TIMEOUT = 1200.0  # seconds for the whole pytest run

KNOWN_DATABASE_LIMITS: dict[str, str] = {
    f"{SUITE}::TestAuroraDataAPI::test_iterators": (
        "MariaDB truncates the fractional seconds of CAST('2020-09-17 13:49:32.780180' AS DATETIME) to "
        "13:49:32, where MySQL (so Aurora MySQL) rounds them to 13:49:33, the value the test expects for "
        "its first row; the rest of the test passes once that expectation is MariaDB's"
    ),
}
"""Test id -> why it fails on ``engine="mysql"``, where MariaDB stands in for Aurora MySQL: differences
of the database, not of the emulator, which are left as they are rather than faked."""

_LIMIT_ENGINE = "mysql"
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def known_limits(engine: str) -> dict[str, str]:
    """The :data:`KNOWN_DATABASE_LIMITS` that apply to ``engine``."""
    return dict(KNOWN_DATABASE_LIMITS) if engine == _LIMIT_ENGINE else {}


async def run_data_api_suite(engine: str, workdir: Path) -> dict[str, str]:
    """Run the ``aurora-data-api`` 0.5.0 suite against a :class:`DataApiEmulator` over an ``engine``
    simulator; returns ``{test id: "passed" | "failed" | "skipped" | "error"}`` (test ids as pytest
    names them, ``test/test.py::TestAuroraDataAPI::test_rowcount``). ``workdir`` keeps the download,
    the extracted tree, the private install, pytest's report and its output (``pytest-<engine>.log``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    workdir = directory(workdir)
    tree = await fetch_sdist(REQUIREMENT, workdir)
    if not (tree / SUITE).exists():
        raise RuntimeError(f"{tree.name} has no {SUITE}")
    site = await install(workdir / "site")
    async with (
        AuroraSimulator(engine, 1, database=DATABASE) as sim,
        DataApiEmulator(sim) as emulator,
    ):
        return await run_pytest(
            ["-rA", SUITE],
            cwd=tree,
            env=suite_environment(emulator, site),
            report=workdir / f"report-{engine}.xml",
            name_test=_test_id,
            log=workdir / f"pytest-{engine}.log",
            timeout=SUITE_TIMEOUT,
        )


async def install(site: Path) -> Path:
    """The package installed into the private directory ``site`` (once), without its dependencies:
    boto3 and botocore are this environment's own."""
    if not _installed(site):
        await run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--upgrade", "--target", str(site), REQUIREMENT],
            timeout=PIP_TIMEOUT,
            check=True,
        )  # fmt: skip
    return site


def _installed(site: Path) -> bool:
    return any(site.glob(f"aurora_data_api-{VERSION}.dist-info"))


def suite_environment(emulator: DataApiEmulator, site: Path) -> dict[str, str]:
    """The suite's environment: this process's, less anything that could send its requests elsewhere
    (AWS settings and profiles, HTTP proxies) or switch on its 45-second timeout test, plus the
    emulator's endpoint and ARNs and dummy credentials."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "AURORA_", "PYTEST_"))
        and key.lower() not in _PROXY_VARIABLES
        and key not in ("TEST_CONTINUE_AFTER_TIMEOUT", "PYTHONPATH")
    }
    env.update(DUMMY_AWS_ENV)
    env.update(
        {
            "AWS_ENDPOINT_URL_RDS_DATA": emulator.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AURORA_CLUSTER_ARN": emulator.resource_arn,
            "AURORA_SECRET_ARN": emulator.secret_arn,
            "AURORA_DB_NAME": DATABASE,
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(site),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _test_id(classname: str, name: str) -> str:
    """``test.test.TestAuroraDataAPI`` + ``test_x`` -> ``test/test.py::TestAuroraDataAPI::test_x``."""
    inner = classname.removeprefix(SUITE.removesuffix(".py").replace("/", ".")).lstrip(".")
    return "::".join(part for part in (SUITE, inner, name) if part)


def summary(engine: str, outcomes: Mapping[str, str]) -> tuple[str, bool]:
    """The per-test lines and counts, and whether every failure is a known database limit."""
    limits = known_limits(engine)
    lines = []
    ok = True
    for test_id, outcome in sorted(outcomes.items()):
        note = ""
        if outcome in ("failed", "error"):
            if test_id in limits:
                note = f"  (database limit: {limits[test_id]})"
            else:
                ok = False
        lines.append(f"{outcome:8} {test_id}{note}")
    lines.append(f"{engine}: {counts(outcomes)}")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    """``python -m compat.data_api_suite --engine postgresql|mysql [--workdir DIR]``: prints each test's
    outcome; exit status 0 when nothing failed but the known database limits."""
    parser = argparse.ArgumentParser(
        prog="python -m compat.data_api_suite", description="The aurora-data-api suite against the emulator."
    )
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aurora_async-compat" / "data-api",
        help="where the download, the extracted suite, the private install and the reports are kept",
    )
    args = parser.parse_args(argv)
    outcomes = asyncio.run(run_data_api_suite(args.engine, args.workdir))
    text, ok = summary(args.engine, outcomes)
    print(text)
    return 0 if ok and outcomes else 1


if __name__ == "__main__":
    sys.exit(main())
