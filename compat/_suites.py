"""What the compat runners share: fetch a published sdist, run a pytest suite in a subprocess and read
each test's outcome from its JUnit XML report."""

from __future__ import annotations

import asyncio
import os
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

Outcomes = dict[str, str]  # test id -> "passed" | "failed" | "skipped" | "error"


async def fetch_sdist(requirement: str, workdir: Path) -> Path:
    """``requirement`` (``name==version``) downloaded from the package index as a source distribution
    (once: kept in ``workdir/downloads``) and extracted under ``workdir``; returns the extracted tree."""
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    name, _, version = requirement.partition("==")
    stem = f"{name}-{version}"
    archive = downloads / f"{stem}.tar.gz"
    if not archive.exists():
        await run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(downloads),
                requirement,
            ],
        )
    if not archive.exists():
        found = sorted(downloads.glob(f"{name.replace('-', '?')}-{version}.tar.gz"))
        if not found:
            raise RuntimeError(f"pip download of {requirement} gave no {archive.name}")
        archive = found[0]
    tree = workdir / archive.name.removesuffix(".tar.gz")
    if not tree.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
    return tree


async def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> int:
    """Run a command to its end (its output goes to ours); returns its exit status."""
    process = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=dict(env) if env else None)
    try:
        async with asyncio.timeout(timeout):
            return await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


async def run_pytest(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], report: Path, timeout: float = 1800
) -> Outcomes:
    """``pytest args`` in ``cwd`` with ``env``; returns each test's outcome from its JUnit report."""
    report.unlink(missing_ok=True)
    await run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report ({report}): see its output above")
    return read_junit(report)


def read_junit(report: Path) -> Outcomes:
    """``{test id: outcome}`` from a pytest JUnit XML report (test id: ``module::Class::test``)."""
    outcomes: Outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        parts = classname.split(".")
        # "tests.test_execute.TestExecute" -> "test_execute::TestExecute::name"
        while parts and not parts[0].startswith("test_"):
            parts.pop(0)
        test_id = "::".join([*parts, name]) if parts else f"{classname}::{name}"
        kinds = {child.tag for child in case}
        if "error" in kinds:
            outcome = "error"
        elif "failure" in kinds:
            outcome = "failed"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        if outcomes.get(test_id) in ("failed", "error"):
            continue  # a teardown error after a pass is reported as a second testcase: keep the worst
        outcomes[test_id] = outcome
    return outcomes


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without settings that would point a suite elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL_", "AWS_", "PYTEST_"))}
    env.update(extra)
    return env
