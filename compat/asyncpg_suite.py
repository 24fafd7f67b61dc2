"""asyncpg's own test suite, run through ``aurora_async.connect()`` against an Aurora PostgreSQL
cluster on the simulator (``python -m compat.asyncpg_suite --mode facade``).

The suite is asyncpg's published source distribution of the installed version, fetched at run time.
Its tests reach the cluster's writer endpoint through ``PGHOST``/``PGPORT`` (asyncpg's test base then
uses the running server instead of creating its own); the connect swap is :mod:`compat._asyncpg_swap`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from aurora_async.testing import AuroraSimulator

from ._suites import Outcomes, environment, fetch_sdist, run_pytest

# the modules that exercise the Connection API (test_connect, test_pool, test_introspection and the
# like test asyncpg's own connect, pool and cluster machinery, which the facade does not replace)
MODULES = (
    "test_execute",
    "test_prepare",
    "test_transaction",
    "test_cursor",
    "test_copy",
    "test_codecs",
    "test_record",
    "test_timeout",
    "test_listeners",
    "test_adversity",
    "test_exceptions",
)
MODES = ("raw", "facade", "facade-noplugins")
REPOSITORY = Path(__file__).resolve().parent.parent


async def run_asyncpg_suite(mode: str, workdir: Path, *, modules: tuple[str, ...] = MODULES) -> Outcomes:
    """Each test's outcome in ``mode`` (``raw``, ``facade``, ``facade-noplugins``)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    source = await fetch_sdist(f"asyncpg=={asyncpg.__version__}", workdir)
    tests = workdir / f"asyncpg-tests-{asyncpg.__version__}"
    if not tests.exists():
        # the tests only: the source tree's own asyncpg package (not built) must not shadow the installed one
        shutil.copytree(source / "tests", tests / "tests")
    (tests / "pytest.ini").write_text("[pytest]\n")  # its own root: not this repository's settings
    async with AuroraSimulator("postgresql", 2, address_prefix="127.0.77.") as sim:
        address = urlsplit(sim.dsn("cluster"))
        env = environment(
            AURORA_COMPAT_MODE=mode,
            PGHOST=address.hostname or "",
            PGPORT=str(address.port),
            PGUSER="postgres",
            PGDATABASE="postgres",
            AURORA_COMPAT_PATTERN=sim.instance_host_pattern,
            PYTHONPATH=str(REPOSITORY),
        )
        return await run_pytest(
            ["-p", "no:asyncio", "-p", "compat._asyncpg_swap", *(f"tests/{m}.py" for m in modules)],
            cwd=tests,
            env=env,
            report=workdir / f"asyncpg-{mode}.xml",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="facade")
    parser.add_argument("--workdir", type=Path, default=REPOSITORY / "compat" / ".work")
    parser.add_argument("modules", nargs="*", help="test modules (default: the Connection API ones)")
    args = parser.parse_args()
    outcomes = asyncio.run(run_asyncpg_suite(args.mode, args.workdir, modules=tuple(args.modules) or MODULES))
    for test_id, outcome in sorted(outcomes.items()):
        if outcome != "passed":
            print(f"{outcome:8} {test_id}")
    counts = {
        k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "error", "skipped")
    }
    print(f"asyncpg {args.mode}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
