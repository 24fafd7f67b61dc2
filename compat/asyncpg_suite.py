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

from ._suites import Outcomes, by_module, counts, environment, fetch_sdist, run_pytest

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

_POOL = (
    "asyncpg's own Pool (the test base's create_pool) takes only asyncpg.Connection instances, and the "
    "swapped connect() returns the facade: use aurora_async.create_pool"
)
_QUERIES_COUNT = (
    "reads con._protocol.queries_count, asyncpg's private count of protocol queries, which the "
    "facade's connect-time role check adds to"
)
_TOP_XACT = "reads con._top_xact, asyncpg's private reference to its own Transaction object"
#: tests that fail through the facade only because they read asyncpg's private internals or check
#: exact classes
PRIVATE_OR_EXACT_CLASS: dict[str, str] = {
    "test_execute::TestExecuteScript::test_execute_script_1": _QUERIES_COUNT,
    "test_prepare::TestPrepare::test_prepare_01": _QUERIES_COUNT,
    "test_transaction::TestTransaction::test_transaction_regular": _TOP_XACT,
    "test_transaction::TestTransaction::test_transaction_nested": _TOP_XACT,
    "test_transaction::TestTransaction::test_transaction_interface_errors": (
        "checks that repr(transaction) starts with '<asyncpg.Transaction'; the facade's reads "
        "'<aurora_async.AuroraTransaction state:rolledback serializable readonly ...' (every InterfaceError "
        "it checks is raised as asyncpg raises it)"
    ),
    "test_listeners::TestListeners::test_dangling_listener_warns": _POOL,
    "test_listeners::TestListeners::test_listen_01": _POOL,
    "test_listeners::TestListeners::test_listen_02": _POOL,
    "test_listeners::TestListeners::test_listen_notletters": _POOL,
    "test_listeners::TestLogListeners::test_dangling_log_listener_warns": _POOL,
}
_REOPENS = (
    "with failover, a connection whose physical connection asyncpg closed (a cancel that could not be "
    "sent in time) does not report is_closed(): its next call reconnects"
)
_PENDING_CANCEL = (
    "test_cancel_attempt_has_one_deadline",
    "test_next_command_timeout_includes_pending_cancel",
)
#: differences the facade makes on purpose, with the default plugins (with plugins=() there are none)
DELIBERATE: dict[str, str] = {
    "test_execute::TestExecuteScript::test_execute_script_interrupted_by_server": (
        "the error is FailoverSuccessError, also asyncpg's ConnectionDoesNotExistError, quoting its "
        "message; its __cause__ is asyncpg's error, so the server's AdminShutdownError the test looks for "
        "is one link further down the chain"
    ),
    **{f"test_timeout::TestCloseTimeoutPendingCancel::{test}": _REOPENS for test in _PENDING_CANCEL},
}
#: failures that come from where the suite runs (also seen raw), not from the facade
ENVIRONMENT: dict[str, str] = {
    "test_execute::TestExecuteMany::test_executemany_server_failure_during_writes": (
        "expects the server's error before all 128 rows were sent; through the simulator's fault proxy "
        "the error can arrive later (raw asyncpg fails it too, intermittently)"
    ),
}
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
            ["-p", "compat._asyncpg_swap"] + [f"tests/{m}.py" for m in modules],
            cwd=tests,
            env=env,
            report=workdir / f"asyncpg-{mode}.xml",
            name_test=by_module,
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
    print(f"asyncpg {args.mode}: {counts(outcomes)}")


if __name__ == "__main__":
    main()
