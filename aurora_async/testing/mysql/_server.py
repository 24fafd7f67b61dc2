"""One local MariaDB server process: its data directory, start, stop and control connections."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import pymysql

from .._errors import SimulatorError
from .._process import OsUser, kill_and_wait, open_log, run_command, run_to_completion, wait_until

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_CONTROL_TIMEOUT = 10.0
_SEMI_SYNC_TIMEOUT_MS = 24 * 3600 * 1000  # commits wait for a replica, as PostgreSQL's synchronous commit
_TOOLS = {
    "server": ("mariadbd", "mysqld"),
    "install_db": ("mariadb-install-db", "mysql_install_db"),
    "dump": ("mariadb-dump", "mysqldump"),
    "client": ("mariadb", "mysql"),
}
_SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")

# Given to mariadb-install-db too: the data directory is made with the sizes the servers run with.
STORAGE_SETTINGS = (
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
)
_RUN_SETTINGS = (
    "--skip-name-resolve",
    # commits reach the OS at once (a killed server loses nothing) but are never fsync'ed: the
    # simulator's machine does not crash, its processes do
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-dump-at-shutdown=OFF",
    "--innodb-buffer-pool-load-at-startup=OFF",
    "--binlog-format=ROW",
    "--gtid-strict-mode=ON",
    "--log-slave-updates=ON",
    "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
    f"--rpl-semi-sync-master-timeout={_SEMI_SYNC_TIMEOUT_MS}",
    "--slave-net-timeout=10",
    "--key-buffer-size=1M",
    "--aria-pagecache-buffer-size=8M",
    "--table-open-cache=400",
    # IAM users (``_iam``): MariaDB's PAM plugin, asking clients for mysql_clear_password as Aurora's
    # AWSAuthenticationPlugin does; where the plugin is missing the server logs it and starts anyway
    "--plugin-load-add=auth_pam_v1",
    "--loose-pam-use-cleartext-plugin=ON",
)


@dataclass(frozen=True)
class MariaDbBinaries:
    """Where the MariaDB server, ``mariadb-install-db``, ``mariadb-dump`` and the client live."""

    server: str
    install_db: str
    dump: str
    client: str

    @classmethod
    def find(cls, bindir: str | os.PathLike[str] | None = None) -> MariaDbBinaries:
        """Look in ``bindir``, else ``$AURORA_SIM_MARIADB_BIN``, else ``PATH`` and the usual sbin/bin
        directories."""
        explicit = bindir or os.environ.get("AURORA_SIM_MARIADB_BIN")
        if explicit:
            directories = [str(explicit)]
        else:
            directories = [*os.environ.get("PATH", "").split(os.pathsep), *_SEARCH_PATH]
        search = os.pathsep.join(d for d in directories if d)
        found: dict[str, str] = {}
        for key, names in _TOOLS.items():
            path = next((p for p in (shutil.which(n, path=search) for n in names) if p), None)
            if path is None:
                raise SimulatorError(
                    f"MariaDB program {names[0]!r} not found (looked in {search}). Install the MariaDB "
                    "server (Debian/Ubuntu: apt-get install mariadb-server, or run scripts/ensure-servers) "
                    "or point AURORA_SIM_MARIADB_BIN at the directory holding mariadbd and its tools."
                )
            found[key] = path
        return cls(**found)


class _QuietCursor(aiomysql.DictCursor):  # type: ignore[misc]
    """Control statements may raise notes ("slave already stopped"): they are not the test's warnings."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


class MariaDbServer:
    """A MariaDB server in ``root`` listening on ``host:port`` (TCP) and a Unix socket in ``root``.

    The simulator controls it as ``root`` over the Unix socket (never through the fault proxy);
    clients reach it through the proxy; replicas replicate from it over TCP.
    """

    def __init__(
        self,
        *,
        binaries: MariaDbBinaries,
        root: Path,
        name: str,
        host: str,
        port: int,
        user: OsUser,
        report_host: str,
        max_connections: int,
        read_only: bool,
        tls_dir: Path | None = None,
        gtid_domain: int = 0,
    ) -> None:
        self.binaries = binaries
        self.gtid_domain = gtid_domain
        self.root = root
        self.name = name
        self.server_id = int(name)
        self.host = host
        self.port = port
        self.user = user
        self.report_host = report_host
        self.max_connections = max_connections
        self.read_only = read_only  # applied at every start: replicas are read-only, the writer is not
        # acknowledges what it receives (semi-sync), as every replica in a cluster does; an Aurora
        # Global Database's secondary region replicates asynchronously
        self.semi_sync_replica = True
        self.tls_dir = tls_dir  # server.crt, server.key and ca.crt: the server accepts TLS
        self.datadir = root / "data"
        self.socket = root / "mysqld.sock"
        self.pidfile = root / "mariadbd.pid"
        self.logfile = root / "server.log"
        self.process: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MariaDbServer {self.name} {self.host}:{self.port} {state}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    # -- data directory ------------------------------------------------------------------------

    def make_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.user.chown(self.root)

    async def copy_datadir_from(self, source: Path) -> None:
        """A fresh data directory: a copy of ``source`` (the cluster's template, never started)."""
        self.make_dirs()
        if self.datadir.exists():
            await run_command(["rm", "-rf", str(self.datadir)], user=self.user, timeout=60)
        await run_command(["cp", "-a", str(source), str(self.datadir)], user=self.user, timeout=120)

    # -- running -------------------------------------------------------------------------------

    def argv(self, *, replicate: bool) -> list[str]:
        argv = [
            self.binaries.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pidfile}",
            f"--log-error={self.logfile}",
            f"--tmpdir={self.root}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--server-id={self.server_id}",
            f"--report-host={self.report_host}",
            f"--max-connections={self.max_connections}",
            f"--log-bin={self.datadir / 'binlog'}",
            f"--relay-log={self.datadir / 'relay-bin'}",
            f"--read-only={'ON' if self.read_only else 'OFF'}",
            f"--gtid-domain-id={self.gtid_domain}",
            f"--rpl-semi-sync-slave-enabled={'ON' if self.semi_sync_replica else 'OFF'}",
            *STORAGE_SETTINGS,
            *_RUN_SETTINGS,
        ]
        if not replicate:
            argv.append("--skip-slave-start")
        if self.tls_dir is not None:
            argv += [
                f"--ssl-cert={self.tls_dir / 'server.crt'}",
                f"--ssl-key={self.tls_dir / 'server.key'}",
                f"--ssl-ca={self.tls_dir / 'ca.crt'}",
            ]
        return argv

    async def start(self, *, replicate: bool = True) -> None:
        """Start the server and wait until it accepts connections. A replica resumes replicating
        unless ``replicate`` is false."""
        if self.running:
            return
        with open_log(self.logfile) as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(replicate=replicate),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.root,
                start_new_session=True,  # its own process group: Ctrl-C reaches the simulator only
                **self.user.spawn_kwargs(signal.SIGKILL),
            )
        try:
            await wait_until(self._accepts_connections, timeout=_START_TIMEOUT, what=f"{self.name} to start")
        except BaseException as exc:
            await run_to_completion(self.stop("immediate"))
            if isinstance(exc, SimulatorError):
                raise SimulatorError(f"{exc}\n{self.log_tail()}") from None
            raise

    async def _accepts_connections(self) -> bool:
        if not self.running:
            raise SimulatorError(f"MariaDB server {self.name} exited during start-up:\n{self.log_tail()}")
        if not self.socket.exists():
            return False
        try:
            conn = await self.connect(timeout=1.0)
        except (OSError, pymysql.err.Error, TimeoutError):
            return False
        await _quit(conn)
        return True

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean: sessions are ended, and every replica first receives the
        whole binary log) or ``immediate`` (SIGKILL: a crash, recovered at the next start)."""
        proc = self.process
        if proc is None:
            return

        async def stop_and_reap() -> None:
            if proc.returncode is None and mode != "immediate":
                try:
                    await self.execute("SHUTDOWN WAIT FOR ALL SLAVES")
                except (OSError, pymysql.err.Error, TimeoutError):
                    pass  # the server ends the connection as it goes down, or was not reachable
                try:
                    async with asyncio.timeout(_STOP_TIMEOUT):
                        await proc.wait()
                except TimeoutError:
                    pass
            await kill_and_wait(proc)

        await run_to_completion(stop_and_reap())
        self.process = None

    # -- control connections -------------------------------------------------------------------

    async def connect(self, *, timeout: float = _CONTROL_TIMEOUT) -> Any:
        """A control connection as ``root`` over the Unix socket (bypasses the fault proxy)."""
        async with asyncio.timeout(timeout):
            return await aiomysql.connect(
                unix_socket=str(self.socket),
                user="root",
                password="",
                autocommit=True,
                connect_timeout=timeout,
                cursorclass=_QuietCursor,
            )

    async def query(self, *statements: str) -> list[dict[str, Any]]:
        """Run ``statements`` in one session; return the rows of the last one."""
        conn = await self.connect()
        try:
            async with conn.cursor() as cursor:
                for statement in statements:
                    async with asyncio.timeout(_CONTROL_TIMEOUT):
                        await cursor.execute(statement)
                rows: list[dict[str, Any]] = list(await cursor.fetchall() or [])
                return rows
        finally:
            await _quit(conn)

    async def execute(self, *statements: str) -> None:
        await self.query(*statements)

    async def value(self, query: str) -> Any:
        """The first column of the first row of ``query`` (None when there is no row)."""
        rows = await self.query(query)
        return next(iter(rows[0].values())) if rows else None

    async def replica_status(self) -> dict[str, Any] | None:
        """``SHOW REPLICA STATUS`` as a dict, or None when the server replicates from nobody."""
        rows = await self.query("SHOW REPLICA STATUS")
        return rows[0] if rows else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])


async def _quit(conn: Any) -> None:
    """Say goodbye (COM_QUIT), so that the server does not log an aborted connection."""
    try:
        async with asyncio.timeout(1):
            await conn.ensure_closed()
    except (OSError, pymysql.err.Error, TimeoutError):
        pass
    finally:
        conn.close()


async def install_template(
    binaries: MariaDbBinaries, datadir: Path, bootstrap: Path, user: OsUser, cwd: Path
) -> None:
    """``mariadb-install-db`` into ``datadir``, running ``bootstrap`` (SQL) at the end; the data
    directory of every instance starts as a copy of it."""
    await run_command(
        [
            binaries.install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            f"--extra-file={bootstrap}",
            f"--tmpdir={cwd}",  # its own, as the servers have: nothing else sweeps its temporary tables
            *STORAGE_SETTINGS,
        ],
        user=user,
        timeout=120,
        cwd=cwd,
        process_group=True,  # a shell script: its mariadbd --bootstrap must die with it
    )
