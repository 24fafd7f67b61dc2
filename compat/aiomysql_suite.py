"""aiomysql's own test suite, run against a local MariaDB: by aiomysql itself or through aurora_async.

``python -m compat.aiomysql_suite --mode facade`` (or ``raw``, ``facade-noplugins``) downloads
aiomysql's source distribution from the package index (kept in ``--workdir``/downloads), extracts it,
starts a MariaDB server of its own on a loopback address, with TLS from the suite's own certificates
(the suite's fixtures log in as ``root`` with ``MYSQL_ROOT_PASSWORD`` over TLS verified with its
``ca.pem``), and runs the suite with pytest in a subprocess. In the facade modes,
``compat._aiomysql_swap`` (a pytest plugin of ours) makes ``aiomysql.connect()`` call
``aurora_async.connect()``; nothing of the suite is copied or changed.

:data:`PRIVATE_OR_EXACT_CLASS` names the tests that fail through the facade only because they read
aiomysql's private attributes or check classes; :data:`BY_DESIGN` those that fail where aurora_async
means to differ; :data:`OUT_OF_SCOPE` the tests of what aurora_async does not replace (aiomysql's pool
and its SQLAlchemy layer, ``aiomysql.sa``). Some tests fail with aiomysql itself too (``raw``), where
the installed PyMySQL or pytest is newer than the suite expects.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from aurora_async.testing._process import OsUser
from aurora_async.testing.mysql._server import MariaDbBinaries, MariaDbServer, install_template
from aurora_async.testing.simulator._network import pick_port
from aurora_async.testing.simulator._tempdirs import choose_base_dir, make_root

from ._suites import Outcomes, counts, fetch_sdist, run_pytest

AIOMYSQL = "aiomysql==0.3.2"
MODES = ("raw", "facade", "facade-noplugins")
HOST = "127.0.33.1"  # the suite's server listens here only (loopback)
_REPO = Path(__file__).resolve().parent.parent
_STUBS = Path(__file__).resolve().parent / "_no_uvloop"
_SUITE_TIMEOUT = 1800.0
_TEST_TIMEOUT = 120  # seconds, per test (pytest-timeout): a hang fails one test, not the run

_POOL = "aiomysql's pool (create_pool): aurora_async has no MySQL pool, so the pool stays aiomysql's"
_SA = "aiomysql.sa, aiomysql's own SQLAlchemy layer (written for SQLAlchemy < 1.4): not replaced"
_PARAMS = "[asyncio-tcp]"  # the suite's parameters: asyncio's loop, the one server labelled "tcp"


def _tests(module: str, names: str, reason: str, *, case: str = "") -> dict[str, str]:
    """``{test id: reason}`` for the tests ``names`` of ``tests/<module>.py`` (of unittest class
    ``case``, whose tests take no parameters)."""
    prefix = f"tests/{module}.py::" + (f"{case}::" if case else "")
    return {f"{prefix}{name}{'' if case else _PARAMS}": reason for name in names.split()}


#: test id -> why it fails through the facade although the behaviour it tests is served: it reads a
#: private attribute of aiomysql's objects or checks a class.
PRIVATE_OR_EXACT_CLASS: dict[str, str] = {
    **_tests(
        "test_cursor",
        "test_custom_cursor",
        "checks isinstance(cursor, MyCursor): the facade's cursor holds an instance of the class asked "
        "for (cursor.raw, whose methods serve every call) rather than being one, so that it can make a "
        "new one on the new physical connection after a failover",
    ),
}

_FAILS_OVER = (
    "with failover on (the default plugins) a connection lost under the application is replaced at "
    "the next call, which raises FailoverSuccessError (the statement did not run: re-run it) where "
    "aiomysql raises "
)

#: test id -> why it fails through the facade by design (in every facade mode unless it says so).
BY_DESIGN: dict[str, str] = {
    **_tests(
        "test_connection",
        "test_connect_timeout",
        "connect_timeout=1e-12 is refused with ConfigurationError: aurora_async takes no timeout below "
        "0.05 s (it would expire before any round trip); a connect that does time out raises "
        "aiomysql's OperationalError 2003",
    ),
    **_tests(
        "test_connection", "test_connection_gone_away", "facade mode only: " + _FAILS_OVER + "2006/2013"
    ),
    **_tests(
        "test_cursor",
        "test_execute_cancel",
        "facade mode only: " + _FAILS_OVER + "InterfaceError (with plugins=() the facade raises it too)",
    ),
    **_tests(
        "test_sscursor",
        "test_sscursor_cancel",
        "facade mode only: " + _FAILS_OVER + "InterfaceError (with plugins=() the facade raises it too)",
    ),
}

#: test id -> why it is not aurora_async's to pass: the tests of aiomysql's pool and of its SQLAlchemy
#: layer (they run with aiomysql's own connections in every mode, in a pytest session of their own).
OUT_OF_SCOPE: dict[str, str] = {
    **_tests(
        "test_pool",
        "test_create_pool test_create_pool2 test_acquire test_release test_release_closed "
        "test_bad_context_manager_usage test_context_manager test_clear test_initial_empty "
        "test_parallel_tasks test_parallel_tasks_more test_default_event_loop "
        "test_release_with_invalid_status test_release_with_invalid_status_wait_release test__fill_free "
        "test_connect_from_acquire test_concurrency test_invalid_minsize_and_maxsize "
        "test_true_parallel_tasks test_cannot_acquire_after_closing test_wait_closed test_echo "
        "test_terminate_with_acquired_connections test_release_closed_connection "
        "test_wait_closing_on_not_closed test_release_terminated_pool "
        "test_release_terminated_pool_wait_release test_close_with_acquired_connections "
        "test_drop_connection_if_timedout test_create_pool_with_timeout test_cancelled_connection "
        "test_pool_with_connection_recycling test_pool_drops_connection_with_exception "
        "test_pool_maxsize_unlimited test_pool_maxsize_unlimited_minsize_1",
        _POOL,
    ),
    **_tests("test_ssl", "test_tls_connect test_auth_plugin_renegotiation", _POOL),
    **_tests(
        "test_sha_connection",
        "test_sha256_nopw test_sha256_pw test_cached_sha256_nopw test_cached_sha256_pw",
        _POOL,
    ),
    **_tests("test_issues", "test_issue_323", _POOL),
    **_tests("test_async_with", "test_pool test_create_pool_deprecations", _POOL),
    **_tests(
        "test_async_with",
        "test_sa_connection test_sa_transaction test_sa_transaction_rollback test_create_engine "
        "test_engine test_transaction_context_manager test_transaction_context_manager_error "
        "test_transaction_context_manager_commit_once test_incompatible_cursor_fails "
        "test_compatible_cursor_correct",
        _SA,
    ),
    **_tests("test_async_iter", "test_async_iter_over_sa_result", _SA),
    **_tests("sa/test_sa_compiled_cache", "test_dialect", _SA),
    **_tests(
        "sa/test_sa_connection",
        "test_async_iter test_create_table test_delete test_double_close test_execute_sa_insert_named_params "
        "test_execute_sa_insert_positional_params test_execute_sa_insert_with_dict "
        "test_execute_sa_insert_with_tuple test_execute_sa_select test_execute_text_select test_fetchall "
        "test_fetchall_closed test_fetchall_not_returns_rows test_fetchmany "
        "test_fetchmany_close_after_last_read test_fetchmany_closed test_fetchmany_not_returns_rows "
        "test_fetchmany_with_size test_fetchmany_with_size_closed test_fetchone_closed "
        "test_first_not_returns_rows test_insert test_raw_insert test_raw_insert_with_executemany "
        "test_raw_insert_with_named_params test_raw_insert_with_params test_raw_insert_with_params_dict "
        "test_raw_select_with_wildcard test_row_proxy test_scalar test_scalar_None test_statement_in "
        "test_weakrefs",
        _SA,
    ),
    **_tests(
        "sa/test_sa_default", "test_default_fields test_default_fields_edit test_default_fields_isnull", _SA
    ),
    **_tests(
        "sa/test_sa_distil",
        "test_distill_dict_multi_empty_param test_distill_dict_multi_none_param "
        "test_distill_multi_list_tuple test_distill_multi_string_tuple test_distill_multi_strings "
        "test_distill_no_multi_no_param test_distill_none test_distill_single_dict "
        "test_distill_single_list_dicts test_distill_single_list_strings test_distill_single_list_tuple "
        "test_distill_single_list_tuples test_distill_single_string",
        _SA,
        case="DistillArgsTest",
    ),
    **_tests(
        "sa/test_sa_engine",
        "test_cannot_acquire_after_closing test_dialect test_driver test_freesize "
        "test_make_engine_with_default_loop test_maxsize test_minsize test_name test_not_context_manager "
        "test_release_transacted test_size test_terminate_with_acquired_connections test_wait_closed",
        _SA,
    ),
    **_tests(
        "sa/test_sa_transaction",
        "test_connection_attr test_inner_transaction_close test_inner_transaction_commit "
        "test_inner_transaction_rollback test_nested_transaction_commit "
        "test_nested_transaction_commit_twice test_nested_transaction_rollback "
        "test_nested_transaction_rollback_twice test_rollback_on_connection_close test_root_transaction "
        "test_root_transaction_close test_root_transaction_commit_inactive "
        "test_root_transaction_double_close test_root_transaction_rollback "
        "test_root_transaction_rollback_inactive test_transactions_sequence "
        "test_twophase_transaction_commit test_twophase_transaction_twice test_without_transactions",
        _SA,
    ),
    **_tests("sa/test_sa_types", "test_values", _SA),
}


def out_of_scope(test_id: str) -> str | None:
    """Why ``test_id`` is out of scope (None: it is in scope); any test under ``tests/sa/`` is."""
    return OUT_OF_SCOPE.get(test_id) or (_SA if test_id.startswith("tests/sa/") else None)


def _nodes(test_ids: Iterable[str]) -> list[str]:
    """pytest node ids (without parameters) of ``test_ids``."""
    return sorted({test_id.split("[", 1)[0] for test_id in test_ids})


# -- the server -----------------------------------------------------------------------------------


class _TlsServer(MariaDbServer):
    """The simulator's MariaDB server, with TLS from the given files, LOAD DATA LOCAL allowed,
    packets big enough for the suite's 16 MiB query, and a metadata lock wait of 20 s rather than a
    year: a test that fails with a transaction left open on a table (the ``aiomysql.sa`` tests under
    SQLAlchemy 2) makes the next ``DROP TABLE`` of that table fail instead of hanging the run."""

    def __init__(self, tls: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tls = tls

    def argv(self, *, replicate: bool) -> list[str]:
        return [
            *super().argv(replicate=replicate),
            f"--ssl-ca={self.tls / 'ca.pem'}",
            f"--ssl-cert={self.tls / 'server-cert.pem'}",
            f"--ssl-key={self.tls / 'server-key.pem'}",
            "--local-infile=ON",
            "--max-allowed-packet=64M",
            "--lock-wait-timeout=20",
        ]


def _bootstrap_sql(password: str) -> str:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    statements = [
        "FLUSH PRIVILEGES",  # bootstrap runs without grant tables: load them, or CREATE USER fails
        # root over TCP, with the password (the Unix socket's root@localhost stays for the control
        # connections); no passwordless root@127.0.0.1 may shadow it
        "DROP USER IF EXISTS 'root'@'127.0.0.1'",
        "DROP USER IF EXISTS 'root'@'::1'",
        f"CREATE USER 'root'@'127.%' IDENTIFIED BY '{quoted}'",
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.%' WITH GRANT OPTION",
    ]
    return "".join(s + ";\n" for s in statements)


@asynccontextmanager
async def mariadb_for_suite(tree: Path, password: str) -> AsyncIterator[tuple[str, int]]:
    """A MariaDB server on :data:`HOST` for the suite in ``tree``: ``root`` logs in over TCP with
    ``password``, TLS with the suite's certificates. Yields ``(host, port)``; stopped and removed at
    exit."""
    binaries = MariaDbBinaries.find()
    user = OsUser.for_servers(default="mysql")
    root = make_root(choose_base_dir(None), user)
    try:
        tls = root / "tls"
        tls.mkdir()
        for name in ("ca.pem", "server-cert.pem", "server-key.pem"):
            shutil.copy(tree / "tests" / "ssl_resources" / "ssl" / name, tls / name)
            user.chown(tls / name)
        (tls / "server-key.pem").chmod(0o600)
        user.chown(tls)
        bootstrap = root / "bootstrap.sql"
        bootstrap.write_text(_bootstrap_sql(password))
        user.chown(bootstrap)
        port = pick_port([HOST], None)
        server = _TlsServer(
            tls,
            binaries=binaries,
            root=root / "instance-1",
            name="1",
            host=HOST,
            port=port,
            user=user,
            report_host=HOST,
            max_connections=200,
            read_only=False,
        )
        server.make_dirs()
        await install_template(binaries, server.datadir, bootstrap, user, root)
        await server.start(replicate=False)
        try:
            yield HOST, port
        finally:
            await server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the run --------------------------------------------------------------------------------------


def node_ids(tree: Path) -> Callable[[str, str], str]:
    """How a JUnit test case of the suite in ``tree`` is named: pytest's node id
    (``tests/test_connection.py::test_connect_timeout[asyncio-tcp]``)."""

    def name_test(classname: str, name: str) -> str:
        parts = classname.split(".")
        for k in range(len(parts), 0, -1):  # the longest prefix that names a module of the suite
            candidate = "/".join(parts[:k]) + ".py"
            if (tree / candidate).exists():
                return "::".join([candidate, *parts[k:], name])
        return "::".join([classname, name])

    return name_test


async def run_aiomysql_suite(mode: str, workdir: Path, *, pytest_args: Sequence[str] = ()) -> dict[str, str]:
    """Run aiomysql's own test suite in ``mode`` (``raw``: aiomysql itself; ``facade``:
    ``aurora_async.connect`` with its default plugins; ``facade-noplugins``: with ``plugins=()``) and
    return ``{test id: "passed" | "failed" | "skipped" | "error"}``.

    The sdist is downloaded into ``workdir/downloads`` when absent and extracted into ``workdir``; the
    suite runs against a MariaDB server of its own on :data:`HOST`, removed afterwards, in two pytest
    sessions: the tests in scope, then those of :data:`OUT_OF_SCOPE` (whose failures under SQLAlchemy
    2 leave transactions open on the suite's tables, which would hold up the others' clean-up).
    ``pytest_args`` replace both selections with one of the caller's: test ids, ``-k``, ``-v``, ...
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    workdir = workdir.resolve()
    tree = await fetch_sdist(AIOMYSQL, workdir)
    password = secrets.token_hex(12)
    out_of_scope_nodes = [*_nodes(OUT_OF_SCOPE), "tests/sa"]
    if pytest_args:
        sessions = [list(pytest_args)]
    else:
        deselect = [f"--deselect={node}" for node in out_of_scope_nodes]
        sessions = [[*deselect, "tests"], out_of_scope_nodes]
    outcomes: Outcomes = {}
    async with mariadb_for_suite(tree, password) as (host, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "PYTEST_", "AURORA_"))}
        env.update(
            MYSQL_ROOT_PASSWORD=password,
            PYTHONPATH=os.pathsep.join([str(_STUBS), str(_REPO)]),
            AURORA_COMPAT_MODE=mode,
        )
        args = [f"--timeout={_TEST_TIMEOUT}"]
        # the suite's conftest marks its hooks the old way, which pytest 9 turns into an error by default
        args += ["-W", "default::pytest.PytestRemovedIn10Warning", f"--mysql-address=tcp={host}:{port}"]
        if mode != "raw":
            args += ["-p", "compat._aiomysql_swap"]
        for number, selection in enumerate(sessions, 1):
            outcomes.update(
                await run_pytest(
                    [*args, *selection],
                    cwd=tree,
                    env=env,
                    report=workdir / f"aiomysql-{mode}-{number}.xml",
                    name_test=node_ids(tree),
                    timeout=_SUITE_TIMEOUT,
                )
            )
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compat.aiomysql_suite --mode MODE [--workdir DIR] [-- PYTEST_ARGS]``: print each
    test's outcome, then the counts (in scope, and in all)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--mode", choices=MODES, default="facade")
    parser.add_argument("--workdir", type=Path, default=_REPO / "compat" / ".work")
    parser.add_argument("pytest_args", nargs="*", help="instead of the whole suite (after --)")
    args = parser.parse_args(argv)
    outcomes = asyncio.run(run_aiomysql_suite(args.mode, args.workdir, pytest_args=args.pytest_args))
    for test_id, outcome in sorted(outcomes.items()):
        note = ""
        if outcome != "passed":
            reason = out_of_scope(test_id) or PRIVATE_OR_EXACT_CLASS.get(test_id) or BY_DESIGN.get(test_id)
            note = f"  ({reason})" if reason else ""
        print(f"{outcome:8} {test_id}{note}")
    in_scope = {t: o for t, o in outcomes.items() if out_of_scope(t) is None}
    for label, selection in (("in scope", in_scope), ("all", outcomes)):
        print(f"aiomysql suite, {args.mode}, {label}: {counts(selection)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
