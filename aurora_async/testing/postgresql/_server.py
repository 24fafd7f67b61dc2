"""One local PostgreSQL server process: create, start as primary or standby, stop, promote, rewind."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .._errors import SimulatorError
from .._process import (
    OsUser,
    group_gone,
    kill_and_wait,
    open_log,
    run_command,
    run_to_completion,
    wait_until,
)
from .._templates import fill_from_template, template_key

_REQUIRED_TOOLS = ("initdb", "postgres", "pg_basebackup", "pg_rewind")
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_CONTROL_TIMEOUT = 10.0

# Written to pg_hba.conf: the simulator's servers only ever listen on loopback addresses.
_HBA = """\
local   all          +password_login        scram-sha-256
host    all          +password_login 127.0.0.0/8 scram-sha-256
local   all          all                    trust
host    all          all    127.0.0.0/8     trust
local   replication  all                    trust
host    replication  all    127.0.0.0/8     trust
"""


@dataclass(frozen=True)
class PgBinaries:
    """Where the PostgreSQL server programs live."""

    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    @classmethod
    def find(cls, bindir: str | os.PathLike[str] | None = None) -> PgBinaries:
        """Locate ``initdb``, ``postgres``, ``pg_basebackup`` and ``pg_rewind``.

        Looks in ``bindir``, then ``$AURORA_SIM_PG_BIN``, then the newest ``/usr/lib/postgresql/*/bin``
        (Debian, Ubuntu), then the directory of ``pg_config --bindir`` / ``postgres`` on ``PATH``.
        """
        candidates: list[Path] = []
        explicit = bindir or os.environ.get("AURORA_SIM_PG_BIN")
        if explicit:
            candidates.append(Path(explicit))
        else:
            debian = sorted(
                glob.glob("/usr/lib/postgresql/*/bin"),
                key=lambda p: [int(x) for x in re.findall(r"\d+", p)],
                reverse=True,
            )
            candidates.extend(Path(p) for p in debian)
            on_path = shutil.which("postgres")
            if on_path:
                candidates.append(Path(os.path.realpath(on_path)).parent)
        for directory in candidates:
            missing = [t for t in _REQUIRED_TOOLS if not os.access(directory / t, os.X_OK)]
            if not missing:
                return cls(directory)
        where = ", ".join(str(c) for c in candidates) or "PATH and /usr/lib/postgresql/*/bin"
        first_missing = next(
            (t for t in _REQUIRED_TOOLS if not any(os.access(c / t, os.X_OK) for c in candidates)),
            _REQUIRED_TOOLS[0],
        )
        raise SimulatorError(
            f"PostgreSQL server binary {first_missing!r} not found (looked in {where}). Install the "
            "PostgreSQL server (Debian/Ubuntu: apt-get install postgresql) or point AURORA_SIM_PG_BIN "
            "at the directory holding initdb, postgres, pg_basebackup and pg_rewind."
        )


class PgServer:
    """A PostgreSQL server in ``root`` listening on ``host:port`` (TCP) and a Unix socket in ``root``.

    The simulator talks to it over the Unix socket (never through the fault proxy); clients reach it
    through the proxy; replicas stream from it over TCP.
    """

    def __init__(
        self,
        *,
        binaries: PgBinaries,
        root: Path,
        name: str,
        host: str,
        port: int,
        user: OsUser,
        settings: Mapping[str, str],
    ) -> None:
        self.binaries = binaries
        self.root = root
        self.name = name
        self.host = host
        self.port = port
        self.user = user
        self.settings = dict(settings)
        self.datadir = root / "data"
        self.sockdir = root / "sock"
        self.logfile = root / "server.log"
        self.process: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PgServer {self.name} {self.host}:{self.port} {state}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def conninfo(self, application_name: str | None = None, database: str = "postgres") -> str:
        """libpq conninfo for replication and pg_rewind sources (TCP, as replicas connect)."""
        info = f"host={self.host} port={self.port} user=postgres dbname={database}"
        if application_name:
            info += f" application_name={application_name}"
        return info

    # -- creating data directories -------------------------------------------------------------

    def make_dirs(self) -> None:
        for directory in (self.root, self.sockdir):
            directory.mkdir(parents=True, exist_ok=True)
            self.user.chown(directory)

    async def initdb(self, *, templates: Path | None = None) -> None:
        """A new data directory; with ``templates`` (a directory), copied from the result of an earlier
        identical ``initdb`` kept there (see ``_templates``)."""
        self.make_dirs()
        initdb = self.binaries.tool("initdb")
        argv = [
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
            # checksums let pg_rewind work even on the single-user crash-recovery run it makes,
            # which does not see our command-line wal_log_hints
            "--data-checksums",
        ]

        async def run_initdb(datadir: Path) -> None:
            await run_command(
                [initdb, "-D", str(datadir), *argv],
                user=self.user,
                timeout=120,
                env=tool_env(),
                process_group=True,  # its bootstrap postgres must die with it
            )

        if templates is None:
            await run_initdb(self.datadir)
        else:
            key = "pg-" + template_key(initdb, argv, self.user)
            await fill_from_template(self.datadir, base=templates, key=key, user=self.user, make=run_initdb)
        self.write_file(self.datadir / "pg_hba.conf", _HBA)

    async def copy_datadir_from(self, source: PgServer) -> None:
        """A cold copy of a cleanly stopped server: the fastest way to make a replica of it."""
        self.make_dirs()
        await run_command(["cp", "-a", str(source.datadir), str(self.datadir)], user=self.user, timeout=120)
        for stale in ("postmaster.pid", "postmaster.opts"):
            (self.datadir / stale).unlink(missing_ok=True)

    async def basebackup_from(self, source: PgServer) -> None:
        """A hot copy of a running server (``pg_basebackup``), for replicas added later."""
        self.make_dirs()
        if self.datadir.exists():
            await run_command(["rm", "-rf", str(self.datadir)], user=self.user, timeout=60)
        await run_command(
            [
                self.binaries.tool("pg_basebackup"),
                "-d",
                source.conninfo(),
                "-D",
                str(self.datadir),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            user=self.user,
            timeout=120,
            env=tool_env(),
        )

    async def rewind_from(self, source: PgServer) -> bool:
        """Make this stopped, diverged ex-primary follow ``source``; fall back to a fresh copy.

        Returns True when ``pg_rewind`` did it, False when a full base backup was needed.
        """
        try:
            await run_command(
                [
                    self.binaries.tool("pg_rewind"),
                    "--target-pgdata",
                    str(self.datadir),
                    "--source-server",
                    source.conninfo(),
                    "--no-sync",
                ],
                user=self.user,
                timeout=120,
                env=tool_env(),
                process_group=True,  # and its single-user postgres
            )
            return True
        except SimulatorError:
            await self.basebackup_from(source)
            return False

    def configure_standby(self, primary: PgServer) -> None:
        """Write ``standby.signal`` and point ``primary_conninfo`` at ``primary`` (read at start)."""
        self.write_file(self.datadir / "standby.signal", "")
        self.set_auto_conf(primary_conninfo=primary.conninfo(self.name), synchronous_standby_names="")

    def configure_primary(self) -> None:
        (self.datadir / "standby.signal").unlink(missing_ok=True)
        self.set_auto_conf(primary_conninfo="", synchronous_standby_names="")

    def set_auto_conf(self, **values: str) -> None:
        """Set parameters in ``postgresql.auto.conf`` of a stopped server (what ALTER SYSTEM writes)."""
        path = self.datadir / "postgresql.auto.conf"
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [ln for ln in lines if ln.split("=", 1)[0].strip() not in values]
        lines += [f"{key} = '{_quote_conf(value)}'" for key, value in values.items() if value != ""]
        self.write_file(path, "\n".join(lines) + "\n")

    def write_file(self, path: Path, text: str) -> None:
        path.write_text(text)
        self.user.chown(path)

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the postmaster and wait until it accepts connections (as primary or hot standby)."""
        if self.running:
            return
        argv = [self.binaries.tool("postgres"), "-D", str(self.datadir)]
        base = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.sockdir),
        }
        for key, value in {**base, **self.settings}.items():
            argv += ["-c", f"{key}={value}"]
        with open_log(self.logfile) as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: Ctrl-C reaches the simulator only
                env=tool_env(),
                **self.user.spawn_kwargs(signal.SIGQUIT),
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
            raise SimulatorError(f"PostgreSQL server {self.name} exited during start-up:\n{self.log_tail()}")
        try:
            conn = await self.connect(timeout=1.0)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean: sessions are terminated, WAL is shipped to standbys) or
        ``immediate`` (a crash: no shutdown checkpoint, crash recovery at the next start)."""
        proc = self.process
        if proc is None:
            return
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT, "smart": signal.SIGTERM}[mode]

        async def stop_and_reap() -> None:
            if proc.returncode is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
                try:
                    async with asyncio.timeout(_STOP_TIMEOUT):
                        await proc.wait()
                except TimeoutError:
                    pass
            # the postmaster's children share its process group: make sure none survive it, and wait
            # until they are gone (a child busy with I/O dies only when that I/O ends)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            await kill_and_wait(proc)
            await group_gone(proc.pid)

        await run_to_completion(stop_and_reap())
        self.process = None

    async def connect(
        self, *, timeout: float = _CONTROL_TIMEOUT, database: str = "postgres"
    ) -> asyncpg.Connection:
        """A control connection over the Unix socket (bypasses the fault proxy)."""
        return await asyncpg.connect(
            host=str(self.sockdir),
            port=self.port,
            user="postgres",
            database=database,
            timeout=timeout,
            server_settings={"application_name": "aurora-simulator"},
        )

    async def execute(self, *statements: str) -> None:
        conn = await self.connect()
        try:
            for statement in statements:
                await conn.execute(statement, timeout=_CONTROL_TIMEOUT)
        finally:
            await conn.close(timeout=_CONTROL_TIMEOUT)

    async def fetchval(self, query: str) -> object:
        conn = await self.connect()
        try:
            return await conn.fetchval(query, timeout=_CONTROL_TIMEOUT)
        finally:
            await conn.close(timeout=_CONTROL_TIMEOUT)

    async def promote(self) -> None:
        """Promote a standby and wait until it accepts writes.

        ``pg_promote(wait => true)`` checks only every 100 ms; polling ourselves ends the wait within a
        few milliseconds of the promotion."""
        await self.execute("SELECT pg_catalog.pg_promote(false)")

        async def promoted() -> bool:
            return await self.fetchval("SELECT NOT pg_catalog.pg_is_in_recovery()") is True

        await wait_until(promoted, timeout=60, interval=0.005, what=f"{self.name} to be promoted")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])


def _quote_conf(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")


def tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    return env
