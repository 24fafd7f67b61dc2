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
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator

PACKAGE = "aurora-data-api"
VERSION = "0.5.0"
REQUIREMENT = f"{PACKAGE}=={VERSION}"
SUITE = "test/test.py"  # inside the extracted source distribution
DATABASE = "data_api_suite"  # created by the simulator, on both engines
ENGINES = ("postgresql", "mysql")
OUTCOMES = ("passed", "failed", "skipped", "error")
PIP_TIMEOUT = 600.0  # seconds for one pip command
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
    workdir = _directory(workdir)
    archive = await download_sdist(workdir / "downloads")
    tree = extract(archive, workdir)
    site = await install(workdir / "site")
    async with (
        AuroraSimulator(engine, 1, database=DATABASE) as sim,
        DataApiEmulator(sim) as emulator,
    ):
        env = suite_environment(emulator, site)
        return await run_pytest(
            tree, env, report=workdir / f"report-{engine}.xml", log=workdir / f"pytest-{engine}.log"
        )


async def download_sdist(downloads: Path) -> Path:
    """The source distribution in ``downloads``, fetched with ``pip download`` unless already there."""
    found = _sdists(downloads)
    if not found:
        await _run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-binary", ":all:", "--dest", str(downloads), REQUIREMENT],
            timeout=PIP_TIMEOUT,
            check=True,
        )  # fmt: skip
        found = _sdists(downloads)
    if not found:
        raise RuntimeError(f"pip download of {REQUIREMENT} left no source distribution in {downloads}")
    return found[0]


def _directory(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sdists(downloads: Path) -> list[Path]:
    _directory(downloads)
    # the file name's project part may be normalised (aurora_data_api-0.5.0.tar.gz)
    return sorted(downloads.glob(f"aurora?data?api-{VERSION}.tar.gz"))


def extract(archive: Path, workdir: Path) -> Path:
    """``archive`` unpacked under ``workdir`` (once); returns the tree that holds the suite."""
    tree = workdir / archive.name.removesuffix(".tar.gz")
    if not (tree / SUITE).exists():
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
    if not (tree / SUITE).exists():
        raise RuntimeError(f"{archive.name} has no {SUITE}")
    return tree


async def install(site: Path) -> Path:
    """The package installed into the private directory ``site`` (once), without its dependencies:
    boto3 and botocore are this environment's own."""
    if not _installed(site):
        await _run(
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


async def run_pytest(tree: Path, env: Mapping[str, str], *, report: Path, log: Path) -> dict[str, str]:
    """pytest on the suite in ``tree`` with its own empty configuration (none of this repository's
    settings or plugins); returns each test's outcome from the JUnit report."""
    config = _fresh_report(report)
    argv = [
        sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:aurora_async",
        "-p", "no:asyncio", "-c", str(config), "--rootdir", str(tree), f"--junitxml={report}", SUITE,
    ]  # fmt: skip
    with log.open("wb") as output:
        await _run(argv, cwd=tree, env=env, output=output, timeout=SUITE_TIMEOUT)
    return read_report(report, log)


def _fresh_report(report: Path) -> Path:
    """Remove an old ``report``; returns the path of pytest's configuration file, written beside it."""
    report.unlink(missing_ok=True)
    config = report.with_suffix(".ini")
    config.write_text("[pytest]\ntimeout = 600\n")
    return config


def read_report(report: Path, log: Path | None = None) -> dict[str, str]:
    """``{test id: outcome}`` from a pytest JUnit XML report; a test reported twice (a teardown error
    after its call) keeps the worse outcome. ``log``: where pytest's output went, for the error when
    there is no report."""
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report {report}" + (f"; its output is in {log}" if log else ""))
    module = SUITE.removesuffix(".py").replace("/", ".")
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        inner = classname.removeprefix(module).lstrip(".")
        test_id = "::".join(part for part in (SUITE, inner, name) if part)
        tags = {child.tag for child in case}
        outcome = (
            "error"
            if "error" in tags
            else "failed"
            if "failure" in tags
            else "skipped"
            if "skipped" in tags
            else "passed"
        )
        if rank[outcome] >= rank[outcomes.get(test_id, "passed")]:
            outcomes[test_id] = outcome
    return outcomes


async def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    output: BinaryIO | None = None,
    check: bool = False,
) -> int:
    """Run ``argv`` to its end (killed on a timeout or when cancelled); returns its exit status
    (``check``: a non-zero one raises). ``output``: a file for its stdout and stderr (else ours)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output,
        stderr=asyncio.subprocess.STDOUT if output is not None else None,
    )
    try:
        async with asyncio.timeout(timeout):
            status = await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if check and status != 0:
        raise RuntimeError(f"{' '.join(argv[2:4])} failed with exit status {status}")
    return status


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
    counts = ", ".join(f"{sum(o == kind for o in outcomes.values())} {kind}" for kind in OUTCOMES)
    lines.append(f"{engine}: {counts}")
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
