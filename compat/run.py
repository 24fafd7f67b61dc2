"""``make compat``: asyncpg's and aiomysql's own test suites through aurora_async, and the independent
``aurora-data-api`` client's suite against the Data API emulator, on real servers; prints the results
and writes ``benchmarks/results/compat.md``.

Every suite is fetched from PyPI at run time (never copied into this repository). A test that passes
on the plain driver but fails through the facade, and is not listed with its reason (private
internals or exact classes, a deliberate difference, the environment), fails the run.

``python -m compat.run [--suites asyncpg,aiomysql,data-api]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from . import aiomysql_suite, asyncpg_suite, data_api_suite
from ._suites import Outcomes

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "benchmarks" / "results" / "compat.md"
MODES = ("raw", "facade", "facade-noplugins")
MODE_TITLES = {"raw": "the driver", "facade": "facade", "facade-noplugins": "facade, `plugins=()`"}


@dataclass
class DriverSuite:
    """A driver's suite in the three modes, and the failures listed with their reasons."""

    name: str
    package: str
    outcomes: dict[str, Outcomes] = field(default_factory=dict)
    listed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # heading -> {test id: reason}

    def unexpected(self) -> list[str]:
        """Tests that pass on the driver but fail through the facade without a listed reason."""
        raw = self.outcomes.get("raw", {})
        known = {test for reasons in self.listed.values() for test in reasons}
        found = []
        for mode in ("facade", "facade-noplugins"):
            for test, outcome in sorted(self.outcomes.get(mode, {}).items()):
                if outcome in ("failed", "error") and raw.get(test) == "passed" and test not in known:
                    found.append(f"{mode}: {test}")
        return found


async def run_driver_suites(names: list[str], workdir: Path) -> list[DriverSuite]:
    suites = []
    for name, run_suite, listed in (
        (
            "asyncpg",
            asyncpg_suite.run_asyncpg_suite,
            {
                "private internals or exact classes": asyncpg_suite.PRIVATE_OR_EXACT_CLASS,
                "deliberate differences (default plugins)": asyncpg_suite.DELIBERATE,
                "the environment": asyncpg_suite.ENVIRONMENT,
            },
        ),
        (
            "aiomysql",
            aiomysql_suite.run_aiomysql_suite,
            {
                "private internals or exact classes": aiomysql_suite.PRIVATE_OR_EXACT_CLASS,
                "deliberate differences": aiomysql_suite.BY_DESIGN,
                "out of scope (aiomysql's own pool and its aiomysql.sa layer)": aiomysql_suite.OUT_OF_SCOPE,
            },
        ),
    ):
        if name in names:
            suite = DriverSuite(name, name, listed=listed)
            for mode in MODES:
                suite.outcomes[mode] = await run_suite(mode, workdir)
            suites.append(suite)
    return suites


async def run_data_api(workdir: Path) -> dict[str, Outcomes]:
    return {
        engine: await data_api_suite.run_data_api_suite(engine, workdir) for engine in ("postgresql", "mysql")
    }


def _module(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def _counts(outcomes: Outcomes, tests: list[str]) -> str:
    counted = Counter(outcomes.get(t, "missing") for t in tests)
    text = f"{counted['passed']}"
    if counted["skipped"]:
        text += f" (+{counted['skipped']} skipped)"
    return text


def report(suites: list[DriverSuite], data_api: dict[str, Outcomes] | None, seconds: float, argv: str) -> str:
    lines = [
        "# Compatibility: the drivers' own test suites through aurora_async",
        "",
        f"`{argv}` on {time.strftime('%Y-%m-%d')}, {platform.python_implementation()} "
        f"{platform.python_version()}, {seconds / 60:.1f} min. Each suite is its published source "
        "distribution, fetched at run time; its `connect()` is swapped for `aurora_async.connect()` "
        "(`compat/_*_swap.py`), nothing else changes. Servers: the simulator's (PostgreSQL 15, MariaDB "
        "10.11). Cells: tests passed (skipped by the suite itself in brackets).",
        "",
    ]
    for suite in suites:
        version = metadata.version(suite.package)
        lines += [f"## {suite.name} {version}", ""]
        tests = sorted({t for outcomes in suite.outcomes.values() for t in outcomes})
        header = "| module | tests | " + " | ".join(MODE_TITLES[m] for m in MODES) + " |"
        lines += [header, "|---|---|" + "---|" * len(MODES)]
        modules = sorted({_module(t) for t in tests})
        for module in [*modules, "**all**"]:
            these = tests if module == "**all**" else [t for t in tests if _module(t) == module]
            cells = [_counts(suite.outcomes.get(m, {}), these) for m in MODES]
            lines.append(f"| {module} | {len(these)} | " + " | ".join(cells) + " |")
        lines.append("")
        for heading, reasons in suite.listed.items():
            raw = suite.outcomes.get("raw", {})
            failing = {  # (a test that fails on the driver itself is not the facade's)
                t: r
                for t, r in reasons.items()
                if raw.get(t) == "passed"
                and any(suite.outcomes.get(m, {}).get(t) in ("failed", "error") for m in MODES[1:])
            }
            if failing:
                lines += [f"Failing through the facade, {heading}:", ""]
                lines += [f"- `{t}`: {r}" for t, r in sorted(failing.items())]
                lines.append("")
        raw_outcomes = suite.outcomes.get("raw", {}).items()
        on_the_driver = sorted(t for t, o in raw_outcomes if o in ("failed", "error"))
        if on_the_driver:
            lines += [
                f"Failing on {suite.name} itself here ({len(on_the_driver)}; versions of its dependencies, "
                "the pytest version, the server; aiomysql.sa against today's SQLAlchemy): "
                + ", ".join(f"`{t}`" for t in on_the_driver),
                "",
            ]
        unexpected = suite.unexpected()
        lines += ["Unexpected failures: " + (", ".join(f"`{u}`" for u in unexpected) or "none"), ""]
    if data_api is not None:
        lines += [
            f"## aurora-data-api {data_api_suite.VERSION} against the Data API emulator",
            "",
            "| engine | tests | passed | failed | skipped |",
            "|---|---|---|---|---|",
        ]
        for engine, outcomes in data_api.items():
            counted = Counter(outcomes.values())
            lines.append(
                f"| {engine} | {len(outcomes)} | {counted['passed']} | "
                f"{counted['failed'] + counted['error']} | {counted['skipped']} |"
            )
        lines.append("")
        for engine, outcomes in data_api.items():
            for test, outcome in sorted(outcomes.items()):
                if outcome != "passed":
                    reason = data_api_suite.known_limits(engine).get(test, "")
                    lines.append(f"- {engine}: `{test}` {outcome}" + (f": {reason}" if reason else ""))
        lines.append("")
    return "\n".join(lines)


def data_api_unexpected(data_api: dict[str, Outcomes]) -> list[str]:
    return [
        f"{engine}: {test}"
        for engine, outcomes in data_api.items()
        for test, outcome in outcomes.items()
        if outcome in ("failed", "error") and test not in data_api_suite.known_limits(engine)
    ]


async def main_async(names: list[str], workdir: Path, write: bool) -> int:
    started = time.monotonic()
    suites = await run_driver_suites(names, workdir)
    data_api = await run_data_api(workdir) if "data-api" in names else None
    text = report(suites, data_api, time.monotonic() - started, "make compat")
    print(text)
    if write:
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    unexpected = [u for suite in suites for u in suite.unexpected()]
    unexpected += data_api_unexpected(data_api) if data_api is not None else []
    if unexpected:
        print("unexpected failures:", *unexpected, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="asyncpg,aiomysql,data-api")
    parser.add_argument("--workdir", type=Path, default=REPOSITORY / "compat" / ".work")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    names = [n.strip() for n in args.suites.split(",") if n.strip()]
    sys.exit(asyncio.run(main_async(names, args.workdir, write=not args.no_write)))


if __name__ == "__main__":
    main()
