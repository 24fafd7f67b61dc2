"""What the compat runners share: fetch a published source distribution, run a command or a pytest
suite in a subprocess with a deadline, and read each test's outcome from pytest's JUnit XML report."""

from __future__ import annotations

import asyncio
import os
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

Outcomes = dict[str, str]  # test id -> "passed" | "failed" | "skipped" | "error"
OUTCOMES = ("passed", "failed", "skipped", "error")
PIP_TIMEOUT = 600.0  # seconds for one pip command
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def directory(path: Path) -> Path:
    """``path``, absolute, created if missing."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


async def fetch_sdist(requirement: str, workdir: Path) -> Path:
    """``requirement`` (``name==version``) downloaded from the package index as a source distribution
    (once: kept in ``workdir/downloads``) and extracted under ``workdir``; returns the extracted tree."""
    name, _, version = requirement.partition("==")
    downloads = directory(workdir / "downloads")
    pattern = f"{name.replace('-', '?').replace('_', '?')}-{version}.tar.gz"  # the name may be normalised
    if not sorted(downloads.glob(pattern)):
        await run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-binary", ":all:", "--dest", str(downloads), requirement],
            timeout=PIP_TIMEOUT,
            check=True,
        )  # fmt: skip
    found = sorted(downloads.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download of {requirement} left no source distribution in {downloads}")
    tree = directory(workdir) / found[0].name.removesuffix(".tar.gz")
    if not tree.exists():
        with tarfile.open(found[0]) as tar:
            tar.extractall(tree.parent, filter="data")
    return tree


async def run(
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


async def run_pytest(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    report: Path,
    name_test: Callable[[str, str], str],
    log: Path | None = None,
    timeout: float = 1800,
) -> Outcomes:
    """``pytest args`` in ``cwd`` with ``env`` and a configuration of its own (none of this
    repository's settings or plugins, nor pytest-asyncio: the suites run their own loops); returns
    each test's outcome from its JUnit report, the test named by ``name_test(classname, name)``.
    ``log``: a file for its output (else ours)."""
    report.unlink(missing_ok=True)
    config = report.with_suffix(".ini")
    config.write_text("[pytest]\n")
    argv = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:aurora_async",
        "-p", "no:asyncio", "-c", str(config),
        "--rootdir", str(cwd), f"--junitxml={report}", *args,
    ]  # fmt: skip
    if log is None:
        await run(argv, cwd=cwd, env=env, timeout=timeout)
    else:
        with log.open("wb") as output:
            await run(argv, cwd=cwd, env=env, output=output, timeout=timeout)
    if not report.exists():
        where = f"; its output is in {log}" if log else ": see its output above"
        raise RuntimeError(f"pytest wrote no report {report}{where}")
    return read_junit(report, name_test)


def read_junit(report: Path, name_test: Callable[[str, str], str]) -> Outcomes:
    """``{test id: outcome}`` from a pytest JUnit XML report; a test reported twice (a teardown error
    after its call) keeps the worse outcome."""
    outcomes: Outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        test_id = name_test(case.get("classname", ""), case.get("name", ""))
        tags = {child.tag for child in case}
        outcome = next((o for tag, o in _TAGS if tag in tags), "passed")
        if _RANK[outcome] >= _RANK[outcomes.get(test_id, "passed")]:
            outcomes[test_id] = outcome
    return outcomes


_TAGS = (("error", "error"), ("failure", "failed"), ("skipped", "skipped"))


def by_module(classname: str, name: str) -> str:
    """``tests.test_execute.TestExecute`` + ``test_x`` -> ``test_execute::TestExecute::test_x``."""
    parts = classname.split(".")
    while parts and not parts[0].startswith("test_"):
        parts.pop(0)
    return "::".join([*parts, name]) if parts else f"{classname}::{name}"


def counts(outcomes: Mapping[str, str]) -> str:
    """``"181 passed, 14 failed, 0 skipped, 0 error"``."""
    return ", ".join(f"{sum(o == kind for o in outcomes.values())} {kind}" for kind in OUTCOMES)


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without settings that would point a suite elsewhere, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL_", "AWS_", "PYTEST_"))}
    env.update(extra)
    return env
