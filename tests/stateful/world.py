"""One stateful run: the simulator, the application's open objects and the ledger of units of work; the
steps that change them and the invariants checked against the database after every step.

Invariants (the letters are what a failing run reports):

- I1 each connection's identity and settings are its own (user, search_path, application_name, TLS;
  MySQL: user, autocommit, sql_mode), on whatever instance it is now;
- I2 no unit of work reports success for partial work: one acknowledged as committed is stored whole,
  one rolled back (acknowledged) is absent, one that raised is stored whole or not at all;
- I3 nothing acknowledged is stored twice or lost, nothing is stored that nobody wrote;
- I4 a closed connection holds no physical connection and no server session, and an open one keeps
  none it no longer uses (a physical connection replaced at failover or by read/write splitting);
- I5 (PostgreSQL) the library's background sessions never use weaker TLS than the connections of the
  cluster they serve;
- I6 while an object is open its cluster lives; after the last one closes no cluster, aurora_async task
  or server session of ours is left;
- I7 credentials that are current always connect and fail over (no login failure, no
  FailoverFailedError while a writer is reachable); a connection whose static password was rotated
  may fail over with FailoverFailedError;
- I8 errors are the documented ones: no bare driver connection error out of a connection facade, no
  call left hanging.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import aiomysql
import asyncpg
import pymysql

import aurora_async
from aurora_async import FailoverFailedError, FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator

from . import _internals
from .engines import (
    FAILOVER_TIMEOUT,
    RETRYABLE,
    Checker,
    MyChecker,
    MyOps,
    Ops,
    PgChecker,
    PgOps,
    Seen,
    Session,
    UnitSpec,
    physical_raws,
)
from .model import PARTS, SECRETS, USERS, Engine, Identity, Model, Obj, Step, identities

OP_DEADLINE = 3 * FAILOVER_TIMEOUT + 15  # no call of the application may take longer (I8)
SETTLE = 6.0  # what must become true after a step (a session ends, a task stops) has this long
SHORT_FAILOVER_TIMEOUT = 1.5  # close_mid_failover's times_out variant
PACKAGE = Path(aurora_async.__file__).resolve().parent


class Infrastructure(BaseException):
    """The simulator or the test's own inspection failed: not a finding about the library. A
    BaseException so that no ``except Exception`` of the application habits swallows it."""


@dataclass
class Violation:
    invariant: str
    step: int
    text: str

    def __str__(self) -> str:
        return f"[{self.invariant}] step {self.step}: {self.text}"


Physicals = dict[tuple[str, int], str]  # (instance id, pid or connection id) -> session marker


@dataclass
class Live:
    """An open object of the application and what the test learned about it."""

    obj: Obj
    handle: Any
    tag: str  # application_name (PostgreSQL) and the units' conn column
    stale: bool = False  # opened with a static password rotated since
    physicals: Physicals = field(default_factory=dict)
    last_instance: str | None = None


@dataclass
class Closed:
    """A closed object whose physical connections and sessions must be gone (I4)."""

    label: str
    step: int
    how: str
    physicals: Physicals
    raws: list[tuple[Any, str | None]]  # client-side physical connections, with their instance if known
    facade: Any | None  # a connection facade: its current physical connection is read again
    # ids of the raws that were closed already when the close began: their sessions ended (or leaked)
    # before, and a MySQL connection id on the same instance may since name another session
    closed_before: frozenset[int] = frozenset()


@dataclass
class Expect:
    state: str  # committed | rolled_back | unknown
    step: int
    label: str
    detail: str


def _login_error(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] in (1045, 1698)


def library_tasks() -> list[asyncio.Task[Any]]:
    """Running tasks whose coroutine is aurora_async's own (the simulator's excluded)."""
    found = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is None:
            continue
        path = Path(code.co_filename).resolve()
        if PACKAGE in path.parents and PACKAGE / "testing" not in path.parents:
            found.append(task)
    return found


async def settle(probe: Callable[[], Awaitable[list[str]]], timeout: float = SETTLE) -> list[str]:
    """Poll ``probe`` until it finds no problem or ``timeout`` passes; the problems left."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await probe()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class World:
    def __init__(self, sim: AuroraSimulator, engine: Engine, moto_endpoint: str, run_id: str) -> None:
        self.sim = sim
        self.engine = engine
        self.moto_endpoint = moto_endpoint
        self.ops: Ops = PgOps(sim, moto_endpoint) if engine == "postgresql" else MyOps(sim, moto_endpoint)
        self.idents = identities(engine)
        self.user_group = {i.user: i.group for i in self.idents.values()}
        self.model = Model(engine)
        self.lives: dict[str, Live] = {}
        self.closed: list[Closed] = []
        self.ledger: dict[str, Expect] = {}
        self.units = 0
        self.run_id = run_id
        self.rotations: Counter[str] = Counter()
        self.passwords = {u: f"{u}-{run_id}-0" for u in USERS}
        self.secret_ids = {name: f"stateful/{run_id}/{name}" for name in SECRETS}
        self.checker: Checker = (
            PgChecker(sim) if engine == "postgresql" else MyChecker(sim, lambda u: self.passwords[u])
        )
        self.violations: list[Violation] = []
        self.traces: list[str] = []
        self.history: list[tuple[int, Step, str]] = []
        self.step_no = 0
        self._reported: set[str] = set()
        # every physical connection of the application's objects seen: what the library leaked is
        # closed at teardown (reported first), not left to a garbage collection at a random moment
        self._seen_raws: dict[int, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------------

    async def setup(self) -> None:
        for user in USERS:
            await self.sim.set_password(user, self.passwords[user])
        for name, user in SECRETS.items():
            await self._put_secret(name, user)
        await self.checker.setup()
        for user in USERS:
            await self._wait_login_everywhere(user)

    async def _put_secret(self, name: str, user: str) -> None:
        value = json.dumps({"username": user, "password": self.passwords[user]})
        session = aioboto3.Session()
        async with session.client(
            "secretsmanager", region_name="us-east-1", endpoint_url=self.moto_endpoint
        ) as client:
            try:
                await client.create_secret(Name=self.secret_ids[name], SecretString=value)
            except client.exceptions.ResourceExistsException:
                await client.put_secret_value(SecretId=self.secret_ids[name], SecretString=value)

    async def _wait_login_everywhere(self, user: str) -> None:
        """Wait until ``user`` logs in with the current password on every instance (replicas apply
        the change a moment after the writer)."""
        password = self.passwords[user]

        async def probe() -> list[str]:
            failing = []
            for instance in self.sim.instance_ids:
                host, port = self.sim.server_endpoint(instance).rsplit(":", 1)
                try:
                    if self.engine == "postgresql":
                        conn = await asyncpg.connect(
                            host=host, port=int(port), user=user, password=password,
                            database="postgres", ssl="disable", timeout=5,
                        )  # fmt: skip
                        await conn.close()
                    else:
                        async with asyncio.timeout(5):
                            my = await aiomysql.connect(
                                host=host, port=int(port), user=user, password=password
                            )
                        my.close()
                except Exception as exc:
                    failing.append(f"{user} cannot log in on {instance}: {type(exc).__name__}")
            return failing

        left = await settle(probe, timeout=15)
        if left:
            raise Infrastructure("; ".join(left))

    async def teardown(self) -> None:
        """Close whatever is still open (after a failed run), then the checker's connections."""
        for live in list(self.lives.values()):
            try:
                if live.obj.kind == "pool":
                    live.handle.terminate()
                elif live.obj.kind == "lease":
                    continue  # the pool's terminate() takes it
                elif live.obj.kind == "raw":
                    (live.handle.terminate if self.engine == "postgresql" else live.handle.close)()
                else:
                    live.handle.terminate()
            except Exception:
                pass
        self.lives.clear()
        for raw in self._seen_raws.values():
            if not raw.is_closed():
                raw.terminate()
        self._seen_raws.clear()
        try:
            await self.checker.kill_sessions()
        finally:
            await self.checker.close()

    # -- bookkeeping ----------------------------------------------------------------------------------

    def violate(self, invariant: str, text: str, *, key: str | None = None) -> None:
        """Record a violation (once per ``key``: the same finding on the same object is not repeated)."""
        key = f"{invariant}:{key or text}"
        if key in self._reported:
            return
        self._reported.add(key)
        self.violations.append(Violation(invariant, self.step_no, text))

    def _password_for(self, ident: Identity) -> str | None:
        return None if ident.secret is not None else self.passwords[ident.user]

    def _options(self, ident: Identity, tag: str, **extra: Any) -> dict[str, Any]:
        secret = self.secret_ids[ident.secret] if ident.secret is not None else None
        return self.ops.options(ident, tag, self._password_for(ident), secret, **extra)

    def _describe(self, live: Live) -> str:
        stale = ", stale password" if live.stale else ""
        return f"{live.obj.label} ({live.obj.identity.name}{stale})"

    def _register(self, live: Live) -> None:
        self.lives[live.obj.label] = live
        self.model.objects[live.obj.label] = live.obj

    def _instance_of(self, live: Live) -> str | None:
        if live.obj.kind in ("conn", "lease"):
            return str(live.handle.instance.instance_id)
        return live.last_instance

    def _forget(self, live: Live, how: str) -> None:
        """``live`` is closed (by the application or the library): its sessions must go (I4)."""
        label = live.obj.label
        self.lives.pop(label, None)
        self.model.objects.pop(label, None)
        if live.obj.kind == "lease" and live.obj.pool in self.lives:
            pool = self.lives[live.obj.pool]
            pool.obj.leases.discard(label)
            pool.physicals.update(live.physicals)
        self.closed.append(
            Closed(
                label,
                self.step_no,
                how,
                dict(live.physicals),
                self._raws_with_instance(live),
                live.handle if live.obj.kind in ("conn", "lease") else None,
            )
        )

    def _raws_with_instance(self, live: Live) -> list[tuple[Any, str | None]]:
        kind = live.obj.kind
        if kind == "pool":
            raws: list[tuple[Any, str | None]] = [
                (raw, str(member.instance.instance_id))
                for member in _internals.pool_members(live.handle)
                for raw in physical_raws(self.ops, member, "conn")
            ]
        elif kind == "raw":
            raws = [(live.handle, live.last_instance)]
        else:
            raws = [(self.ops.raw_of(live.handle), self._instance_of(live))]
            spare = _internals.spare(live.handle)
            if spare is not None:
                raws.append(spare)
        self._seen_raws.update((id(raw), raw) for raw, _ in raws)
        return raws

    # -- calls on the application's objects -----------------------------------------------------------

    async def guarded(
        self, live: Live, what: str, call: Callable[[], Awaitable[Any]], *, connecting: bool = False
    ) -> tuple[Any, BaseException | None]:
        """Run an application call with a deadline; judge its error (I7, I8)."""
        deadline = asyncio.timeout(OP_DEADLINE)
        try:
            async with deadline:
                return await call(), None
        except TimeoutError as exc:
            if deadline.expired():
                self.violate("I8", f"{what} on {self._describe(live)} hung for {OP_DEADLINE:g} s")
            else:
                await self.judge(live, what, exc, connecting=connecting)
            return None, exc
        except Exception as exc:
            await self.judge(live, what, exc, connecting=connecting)
            return None, exc

    async def judge(self, live: Live, what: str, exc: BaseException, *, connecting: bool = False) -> None:
        name = f"{type(exc).__name__}: {exc}"
        kind = live.obj.kind
        if kind == "raw":  # a genuine driver connection: no failover; the application drops it
            if connecting:
                self.violate("I7", f"connect_raw {self._describe(live)} failed: {name}")
            else:
                await self._close_quietly(live, "dropped after an error")
            return
        if self.ops.is_bare(exc):
            self.violate("I8", f"{what} on {self._describe(live)} raised the driver's {name}")
            self._trace(exc)
            return
        if isinstance(exc, FailoverFailedError):
            if not live.stale:
                self.violate(
                    "I7",
                    f"{what} on {self._describe(live)}: FailoverFailedError with current credentials ({exc})",
                )
            if kind == "lease":
                await self._release_quietly(live, "closed by FailoverFailedError")
            elif kind == "conn":
                self._forget(live, "closed by FailoverFailedError")
            return
        if isinstance(exc, FailoverSuccessError | TransactionResolutionUnknownError):
            return
        if connecting and not live.stale:
            self.violate("I7", f"{what} {self._describe(live)} failed: {name}")
            return
        if live.stale and _login_error(exc):
            return
        if not isinstance(exc, aurora_async.AuroraError):
            self.violate("I8", f"{what} on {self._describe(live)} raised an unexpected {name}")
            self._trace(exc)

    def _trace(self, exc: BaseException) -> None:
        """Keep where an undocumented error came from (printed with the report). Frames only, no
        carets: Python 3.11's caret placement parses source lines with ``ast``, and an ``ast.parse``
        re-entered from a finalizer corrupts the parser's state for the rest of the process."""
        lines: list[str] = []
        visited: set[int] = set()
        seen: BaseException | None = exc
        while seen is not None and id(seen) not in visited:
            visited.add(id(seen))
            lines.append(f"{type(seen).__name__}: {seen}")
            lines += [
                f"  {f.filename}:{f.lineno} in {f.name}: {f.line}"
                for f in traceback.extract_tb(seen.__traceback__)
            ]
            seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
        self.traces.append(f"step {self.step_no}:\n" + "\n".join(lines))

    async def _close_quietly(self, live: Live, how: str) -> None:
        try:
            async with asyncio.timeout(10):
                await self.ops.close(live.handle, live.obj.kind, "ensure_closed")
        except Exception:
            pass
        self._forget(live, how)

    async def _release_quietly(self, live: Live, how: str) -> None:
        pool = self.lives.get(live.obj.pool or "")
        if pool is not None:
            try:
                async with asyncio.timeout(10):
                    await pool.handle.release(live.handle)
            except Exception:
                pass
        self._forget(live, how)

    # -- steps ----------------------------------------------------------------------------------------

    async def step(self, step: Step) -> str:
        self.step_no += 1
        handler = getattr(self, f"_do_{step.kind}", None)
        if handler is None:
            raise ValueError(f"unknown step {step}")
        outcome = await handler(step)
        self.history.append((self.step_no, step, outcome))
        await self.check()
        return str(outcome)

    def _live(self, label: str, *kinds: str) -> Live | None:
        live = self.lives.get(label)
        return live if live is not None and live.obj.kind in kinds else None

    async def _open(self, label: str, ident_name: str, *, read_only: bool, **extra: Any) -> Live | None:
        ident = self.idents[ident_name]
        live = Live(Obj(label, "conn", ident, read_only=read_only), None, f"st-{label}")
        options = self._options(ident, live.tag, **extra)
        handle, exc = await self.guarded(
            live, "connect", lambda: aurora_async.connect(read_only=read_only, **options), connecting=True
        )
        if exc is not None:
            return None
        live.handle = handle
        self._register(live)
        return live

    async def _do_open(self, step: Step) -> str:
        extra = {"failover_timeout": float(step.opt("timeout"))} if step.opt("timeout") else {}
        live = await self._open(step.args[0], step.args[1], read_only=step.opt("ro") == "1", **extra)
        return "ok" if live is not None else "failed"

    async def _do_raw(self, step: Step) -> str:
        label, ident = step.args[0], self.idents[step.args[1]]
        live = Live(Obj(label, "raw", ident), None, f"st-{label}")
        options = self._options(ident, live.tag)
        handle, exc = await self.guarded(
            live, "connect_raw", lambda: aurora_async.connect_raw(**options), connecting=True
        )
        if exc is not None:
            return "failed"
        live.handle = handle
        self._register(live)
        return "ok"

    async def _do_pool(self, step: Step) -> str:
        label, ident = step.args[0], self.idents[step.args[1]]
        live = Live(Obj(label, "pool", ident), None, f"st-{label}")
        options = self._options(ident, live.tag)

        async def create() -> Any:
            return await aurora_async.create_pool(min_size=1, max_size=3, **options)

        handle, exc = await self.guarded(live, "create_pool", create, connecting=True)
        if exc is not None:
            return "failed"
        live.handle = handle
        self._register(live)
        return "ok"

    async def _do_acquire(self, step: Step) -> str:
        label, pool_label = step.args
        pool = self._live(pool_label, "pool")
        if pool is None:
            return "skipped (pool not open)"
        read_only = step.opt("ro") == "1"
        live = Live(
            Obj(label, "lease", pool.obj.identity, read_only=read_only, pool=pool_label),
            None,
            pool.tag,
            stale=pool.stale,
        )

        async def acquire() -> Any:
            return await pool.handle.acquire(read_only=read_only, timeout=OP_DEADLINE / 2)

        handle, exc = await self.guarded(live, f"acquire from {pool_label}", acquire, connecting=True)
        if exc is not None:
            return f"failed: {type(exc).__name__}"
        live.handle = handle
        pool.obj.leases.add(label)
        self._register(live)
        return "ok"

    async def _do_release(self, step: Step) -> str:
        live = self._live(step.args[0], "lease")
        if live is None:
            return "skipped"
        pool = self.lives[live.obj.pool or ""]
        _, exc = await self.guarded(live, "release", lambda: pool.handle.release(live.handle))
        self.lives.pop(live.obj.label)
        self.model.objects.pop(live.obj.label)
        pool.obj.leases.discard(live.obj.label)
        pool.physicals.update(live.physicals)
        return "ok" if exc is None else f"failed: {type(exc).__name__}"

    async def _close(self, live: Live, how: str) -> str:
        kind = live.obj.kind
        if kind == "pool":
            for lease in [self.lives[x] for x in sorted(live.obj.leases) if x in self.lives]:
                await self._do_release(Step("release", (lease.obj.label,)))
        raws = self._raws_with_instance(live)
        closed_before = frozenset(id(raw) for raw, _ in raws if raw.is_closed())
        _, exc = await self.guarded(live, f"close ({how})", lambda: self.ops.close(live.handle, kind, how))
        if live.obj.label in self.lives:
            self._forget(live, how)
            self.closed[-1].raws = raws + [r for r in self.closed[-1].raws if r not in raws]
            self.closed[-1].closed_before = closed_before
        return "ok" if exc is None else f"raised {type(exc).__name__}"

    async def _do_close(self, step: Step) -> str:
        live = self.lives.get(step.args[0])
        if live is None or live.obj.kind == "lease":
            return "skipped"
        return await self._close(live, step.opt("how", "close"))

    async def _do_close_all(self, step: Step) -> str:
        for live in sorted(self.lives.values(), key=lambda x: x.obj.kind != "lease"):
            if live.obj.label not in self.lives:
                continue
            if live.obj.kind == "lease":
                await self._do_release(Step("release", (live.obj.label,)))
            else:
                await self._close(live, "ensure_closed" if self.engine == "mysql" else "close")
        return "ok"

    async def _unit_fault(self, kind: str, live: Live) -> None:
        try:
            instance = self._instance_of(live) or self.sim.writer_id
            if kind == "failover":
                await self.sim.failover()
            elif kind == "switchover":
                await self.sim.switchover()
            elif kind == "reset":
                await self.sim.reset_connections(instance)
            elif kind == "drop_commit":
                await self.sim.drop_after_commit(instance)
            else:
                raise ValueError(f"unknown fault {kind!r}")
        except Exception as exc:
            raise Infrastructure(f"the simulator failed to inject {kind}: {exc!r}") from exc

    async def _do_unit(self, step: Step) -> str:
        live = self._live(step.args[0], "conn", "lease")
        if live is None:
            return "skipped (not open)"
        self.units += 1
        uid = f"{self.run_id}.u{self.units}"
        spec = UnitSpec(
            uid=uid,
            tag=live.tag,
            style=step.args[1],
            inner=step.opt("inner", "none"),
            end=step.opt("end", "commit"),
            outer=step.opt("outer") == "1",
        )
        fault, _, at = step.opt("fault").partition("@")

        async def inject(k: int) -> None:
            if fault and k == int(at):
                await self._unit_fault(fault, live)

        result, exc = await self.guarded(
            live, f"unit {uid}", lambda: self.ops.unit(live.handle, spec, live.obj.identity, inject)
        )
        if exc is None:
            self.ledger[uid] = Expect(str(result), self.step_no, live.obj.label, str(step))
            return f"{uid} {result}"
        self.ledger[uid] = Expect("unknown", self.step_no, live.obj.label, f"{step} -> {type(exc).__name__}")
        return f"{uid} raised {type(exc).__name__}"

    async def _do_read(self, step: Step) -> str:
        live = self._live(step.args[0], "conn", "lease")
        if live is None:
            return "skipped (not open)"
        _, exc = await self.guarded(
            live, f"read ({step.args[1]})", lambda: self.ops.read(live.handle, step.args[1])
        )
        return "ok" if exc is None else f"raised {type(exc).__name__}"

    async def _cut(self, live: Live) -> None:
        """Reset the connections of ``live``'s instance and wait until its physical connection saw it."""
        instance = self._instance_of(live)
        if instance is None:
            return
        try:
            await self.sim.reset_connections(instance)
        except Exception as exc:
            raise Infrastructure(f"reset_connections failed: {exc!r}") from exc
        await until(lambda: bool(self.ops.raw_of(live.handle).is_closed()), 5.0)

    async def _do_idle_break(self, step: Step) -> str:
        live = self._live(step.args[0], "conn", "lease")
        if live is None:
            return "skipped (not open)"
        api = step.args[1]
        _, exc = await self.guarded(
            live,
            f"{api} after its idle connection was cut",
            lambda: self.ops.idle_break(live.handle, api, lambda: self._cut(live)),
        )
        first = "ok" if exc is None else type(exc).__name__
        if live.obj.label not in self.lives:
            return first
        # whatever the first call said, the connection must be usable now (at most one more failover)
        for _ in range(2):
            _, again = await self.guarded(
                live, f"a statement after {api}", lambda: self.ops.ping(live.handle)
            )
            if not isinstance(again, RETRYABLE):
                break
        return first

    async def _do_read_only(self, step: Step) -> str:
        live = self._live(step.args[0], "conn", "lease")
        if live is None:
            return "skipped (not open)"
        wanted = step.args[1] == "on"
        down = self.sim.reader_ids if step.opt("readers") == "down" else []
        try:
            for reader in down:
                await self.sim.crash(reader)
        except Exception as exc:
            raise Infrastructure(f"crashing the readers failed: {exc!r}") from exc
        _, failed = await self.guarded(
            live, f"set_read_only({wanted})", lambda: live.handle.set_read_only(wanted)
        )
        try:
            for reader in down:
                await self.sim.restore(reader)
        except Exception as error:
            raise Infrastructure(f"restoring the readers failed: {error!r}") from error
        if failed is None:
            live.obj.read_only = wanted
            return "ok"
        return f"raised {type(failed).__name__}"

    async def _do_fault(self, step: Step) -> str:
        kind = step.args[0]
        sim = self.sim
        try:
            if step.opt("dns"):
                sim.dns_delay = float(step.opt("dns"))
            readers = sim.reader_ids
            reader = readers[int(step.opt("r", "0")) % len(readers)] if readers else None
            if kind == "failover":
                await sim.failover()
            elif kind == "switchover":
                await sim.switchover()
            elif kind == "reset_writer":
                await sim.reset_connections(sim.writer_id)
            elif kind == "reset_reader" and reader is not None:
                await sim.reset_connections(reader)
            elif kind == "reboot_reader" and reader is not None:
                await sim.reboot(reader)
            elif kind == "crash_reader" and reader is not None:
                await sim.crash(reader)
                api = "fetch" if self.engine == "postgresql" else "cursor"
                on_it = [x for x in self.lives.values() if x.obj.read_only and self._instance_of(x) == reader]
                for live in on_it:
                    handle = live.handle
                    await self.guarded(
                        live, "a read on a crashed reader", functools.partial(self.ops.read, handle, api)
                    )
                await sim.restore(reader)
            elif kind == "blackhole_reader" and reader is not None:
                # reads on the silenced reader must be rescued by host monitoring and fail over
                await sim.blackhole(reader)
                api = "fetch" if self.engine == "postgresql" else "cursor"
                on_it = [x for x in self.lives.values() if x.obj.read_only and self._instance_of(x) == reader]
                for live in on_it:
                    handle = live.handle
                    await self.guarded(
                        live, "a read on a black-holed reader", functools.partial(self.ops.read, handle, api)
                    )
                await sim.restore(reader)
                return f"{len(on_it)} read(s) on it"
            elif kind == "blackhole":
                return await self._blackhole(step.opt("on"))
            return "ok"
        except Infrastructure:
            raise
        except Exception as exc:
            raise Infrastructure(f"the simulator failed at {step}: {exc!r}") from exc

    async def _blackhole(self, on: str) -> str:
        """Silence the writer with a call in flight on ``on``: host monitoring must abort it, then the
        simulator fails over and the call ends with a failover error (never hangs)."""
        sim = self.sim
        old = sim.writer_id
        live = self._live(on, "conn", "lease")
        if live is not None and self._instance_of(live) != old:
            live = None
        await sim.blackhole(old)
        outcome = "no call in flight"
        task: asyncio.Task[tuple[Any, BaseException | None]] | None = None
        if live is not None:
            held = live
            raw = self.ops.raw_of(held.handle)
            task = asyncio.ensure_future(
                self.guarded(held, "a call on a black-holed writer", lambda: self.ops.busy(held.handle))
            )
            if not await until(lambda: task.done() or raw.is_closed(), 10.0):
                self.violate(
                    "I8",
                    f"a call on {self._describe(held)} on the black-holed writer was not aborted within 10 s",
                )
        await sim.failover()
        await sim.restore(old)
        if task is not None:
            _, exc = await task
            outcome = "call ended " + ("ok" if exc is None else type(exc).__name__)
        return outcome

    async def _do_rotate(self, step: Step) -> str:
        user = step.args[0]
        self.rotations[user] += 1
        self.passwords[user] = f"{user}-{self.passwords[user].split('-')[1]}-{self.rotations[user]}"
        try:
            await self.sim.set_password(user, self.passwords[user])
            for name, owner in SECRETS.items():
                if owner == user:
                    await self._put_secret(name, user)
        except Exception as exc:
            raise Infrastructure(f"rotation failed: {exc!r}") from exc
        for live in self.lives.values():
            if live.obj.identity.user == user and live.obj.identity.secret is None:
                live.stale = True
        await self._wait_login_everywhere(user)
        return "ok"

    async def _do_await_background(self, step: Step) -> str:
        """Wait (at most 5 s) until the library has background sessions (its monitoring connection
        opens a moment after a cluster's first connection): a scenario's next step then meets them."""

        async def none_yet() -> list[str]:
            app, known = self._app_pids(), self._known_sessions()
            sessions = await self._sessions()
            found = [s for s in sessions if s.pid not in app and (s.instance, s.pid, s.marker) not in known]
            return [] if found else ["no background session yet"]

        return "ok" if not await settle(none_yet, timeout=5.0) else "none appeared"

    async def _do_close_mid_failover(self, step: Step) -> str:
        """Close a connection while it fails over: the writer is crashed, a call fails over (waiting for
        a writer), the application closes the connection, then a writer comes back (``completes``) or
        the connection's failover times out first (``times_out``)."""
        label, ident_name = step.args
        outcome = step.opt("outcome", "completes")
        timeout = SHORT_FAILOVER_TIMEOUT if outcome == "times_out" else FAILOVER_TIMEOUT
        live = await self._open(label, ident_name, read_only=False, failover_timeout=timeout)
        if live is None:
            return "open failed"
        sim, handle = self.sim, live.handle
        cluster = _internals.cluster_of(handle)
        assert cluster is not None, "a connection open through the library has a cluster"
        refs_before = cluster.refs  # this connection's reference included
        # a connect_raw connection holds a reference until it closes, and the crash may close it
        raws = [x.handle for x in self.lives.values() if x.obj.kind == "raw" and not x.handle.is_closed()]
        old = sim.writer_id
        try:
            await sim.crash(old)
        except Exception as exc:
            raise Infrastructure(f"crash failed: {exc!r}") from exc
        call = asyncio.ensure_future(self.ops.ping(handle))
        failing_over = await until(lambda: call.done() or _internals.in_failover(handle), 5.0)
        note = "closed mid-failover" if failing_over and not call.done() else "the call ended before close"
        how = step.opt("how", "ensure_closed" if self.engine == "mysql" else "close")
        try:
            async with asyncio.timeout(15):
                await self.ops.close(handle, "conn", how)
        except TimeoutError:
            self.violate("I8", f"close() of {self._describe(live)} during its failover hung")
        except Exception:
            pass
        self._forget(live, f"{how} mid-failover")
        if outcome == "times_out":
            await asyncio.wait({call}, timeout=timeout + 10)
        try:
            await sim.failover()
        except Exception as exc:
            raise Infrastructure(f"failover after the crash failed: {exc!r}") from exc
        done, _ = await asyncio.wait({call}, timeout=OP_DEADLINE)
        if not done:
            call.cancel()
            self.violate("I8", f"a call on {self._describe(live)}, closed during its failover, never ended")
            return note + ", call hung"
        error = call.exception()
        dropped = sum(1 for raw in raws if raw.is_closed())
        if not refs_before - 1 - dropped <= cluster.refs <= refs_before - 1:
            self.violate(
                "I6",
                f"closing {self._describe(live)} during its failover ({outcome}) released its cluster "
                f"{refs_before - cluster.refs - dropped} times (references {refs_before} -> {cluster.refs}"
                f"{f', {dropped} raw connection(s) closed meanwhile' if dropped else ''}"
                f"{', the cluster is closed' if cluster.closed else ''})",
            )
        return f"{note}, call ended {'ok' if error is None else type(error).__name__}"

    # -- invariants -----------------------------------------------------------------------------------

    async def check(self) -> None:
        await self._check_identities()
        self._check_clusters_alive()
        await self._check_ledger()
        await self._check_sessions()

    async def _whoami(self, live: Live) -> Seen | None:
        for _ in range(3):
            if live.obj.label not in self.lives:
                return None
            if live.obj.kind == "raw" and self.ops.raw_of(live.handle).is_closed():
                await self._close_quietly(live, "closed under it (tracker)")
                return None
            seen, exc = await self.guarded(live, "the identity query", lambda: self.ops.whoami(live.handle))
            if exc is None:
                return seen  # type: ignore[no-any-return]
            if not isinstance(exc, RETRYABLE):
                return None
        return None

    async def _check_identities(self) -> None:
        """Ask every open connection who it is, all at once (connections broken by the last step fail
        over together, as an application's would)."""
        lives = [live for live in self.lives.values() if live.obj.kind != "pool"]
        for live, seen in zip(lives, await asyncio.gather(*(self._whoami(x) for x in lives)), strict=True):
            if seen is None:
                continue
            live.physicals[(seen.instance, seen.pid)] = seen.marker
            live.last_instance = seen.instance
            wrong = self.ops.mismatches(seen, live.obj.identity, live.tag)
            if wrong:
                where = "reader" if live.obj.read_only else "writer"
                self.violate(
                    "I1",
                    f"{self._describe(live)} on {where} {seen.instance}: " + "; ".join(wrong),
                    key=f"{live.obj.label}:{[w.split(' ', 1)[0] for w in wrong]}",
                )

    def _check_clusters_alive(self) -> None:
        alive = registry.clusters()
        for live in self.lives.values():
            if live.obj.kind == "raw":
                continue
            cluster = _internals.cluster_of(live.handle)
            if cluster is not None and (cluster.closed or cluster not in alive):
                self.violate(
                    "I6",
                    f"{self._describe(live)} is open but its cluster was closed (refs={cluster.refs}): "
                    "released once too often; its background monitoring has stopped",
                )

    async def _check_ledger(self) -> None:
        try:
            stored = await self.checker.ledger(f"{self.run_id}.")
        except Exception as exc:
            raise Infrastructure(f"cannot read the units: {exc!r}") from exc
        for uid, (count, parts) in sorted(stored.items()):
            expect = self.ledger.get(uid)
            if expect is None:
                self.violate("I3", f"unit {uid} is stored ({count} rows) but no step wrote it")
            elif count > PARTS or parts != count:
                self.violate(
                    "I3",
                    f"unit {uid} ({expect.detail}, {expect.state}) has {count} rows over {parts} parts",
                )
        for uid, expect in self.ledger.items():
            count = stored.get(uid, (0, 0))[0]
            where = f"unit {uid} on {expect.label} at step {expect.step} ({expect.detail})"
            if expect.state == "committed" and count != PARTS:
                if count == 0:
                    self.violate("I3", f"{where} was acknowledged as committed but is not stored")
                else:
                    self.violate(
                        "I2",
                        f"{where} was acknowledged as committed but only {count} of {PARTS} rows are stored",
                    )
            elif expect.state == "rolled_back" and count:
                self.violate(
                    "I2", f"{where} was rolled back (acknowledged) but {count} of {PARTS} rows are stored"
                )
            elif expect.state == "unknown" and count not in (0, PARTS):
                self.violate(
                    "I2", f"{where} raised, and {count} of {PARTS} rows are stored: a partial transaction"
                )

    def _app_pids(self) -> set[int]:
        pids = set()
        for live in self.lives.values():
            for raw, _ in self._raws_with_instance(live):
                pid = self.ops.pid_of(raw)
                if pid is not None and not raw.is_closed():
                    pids.add(pid)
        return pids

    def _known_sessions(self) -> set[tuple[str, int, str]]:
        known = {(i, p, m) for live in self.lives.values() for (i, p), m in live.physicals.items()}
        known |= {(i, p, m) for c in self.closed for (i, p), m in c.physicals.items()}
        return known

    async def _sessions(self) -> list[Session]:
        try:
            return await self.checker.sessions()
        except Exception as exc:
            raise Infrastructure(f"cannot read the sessions: {exc!r}") from exc

    def _learn_markers(self, closed: Closed, sessions: list[Session]) -> None:
        """Record which live sessions are the closed object's last physical connections."""
        raws = list(closed.raws)
        if closed.facade is not None:
            raws.append((self.ops.raw_of(closed.facade), str(closed.facade.instance.instance_id)))
        for raw, instance in raws:
            if self.engine == "mysql" and id(raw) in closed.closed_before:
                # its connection id was let go before this close: after the instance restarted, the
                # same id may be another connection's (the library's topology monitor's, say)
                continue
            pid = self.ops.pid_of(raw)
            for s in sessions:
                # PostgreSQL pids are unique on the machine; MySQL connection ids only per server
                if s.pid == pid and (self.engine == "postgresql" or s.instance == instance):
                    closed.physicals.setdefault((s.instance, s.pid), s.marker)

    def _closed_problems(self, closed: Closed, sessions: list[Session]) -> list[str]:
        problems = []
        raws = list(closed.raws)
        if closed.facade is not None:
            raws.append((self.ops.raw_of(closed.facade), str(closed.facade.instance.instance_id)))
        self._seen_raws.update((id(raw), raw) for raw, _ in raws)
        who = f"{closed.label} ({closed.how} at step {closed.step})"
        for raw, instance in raws:
            if not raw.is_closed():
                problems.append(
                    f"{who} still has an open physical connection (pid {self.ops.pid_of(raw)} on {instance})"
                )
        marks = {(s.instance, s.pid, s.marker): s for s in sessions}
        for (instance, pid), marker in closed.physicals.items():
            s = marks.get((instance, pid, marker))
            if s is not None:
                problems.append(f"{who} still has a server session: pid {pid} on {instance} as {s.user}")
        return problems

    def _superseded_problems(self, sessions: list[Session]) -> list[tuple[str, str]]:
        """Physical connections an open object used before (seen at an earlier check) but no longer
        holds, as its current or spare connection or a pool member: they must be closed (I4)."""
        marks = {(s.instance, s.pid, s.marker): s for s in sessions}
        problems = []
        for live in self.lives.values():
            if live.obj.kind == "raw":
                continue
            current = set()
            for raw, instance in self._raws_with_instance(live):
                pid = self.ops.pid_of(raw)
                if pid is not None:
                    current.add(pid if self.engine == "postgresql" else (instance, pid))
            for (instance, pid), marker in live.physicals.items():
                held = pid if self.engine == "postgresql" else (instance, pid)
                s = marks.get((instance, pid, marker))
                if s is not None and held not in current:
                    problems.append(
                        (
                            f"{self._describe(live)} left a physical connection it no longer uses open: "
                            f"pid {pid} on {instance} as {s.user}",
                            f"{live.obj.label}:{instance}:{pid}",
                        )
                    )
        return problems

    def _background_tls_problems(self, sessions: list[Session]) -> list[tuple[str, str]]:
        """Plain-text sessions that are no application connection's, of a user whose clusters all serve
        a connection that requires TLS: (text, what makes it the same finding on the next step)."""
        if self.engine != "postgresql":
            return []
        app = self._app_pids()
        known = self._known_sessions()
        members: dict[int, list[Live]] = {}
        for live in self.lives.values():
            if live.obj.kind == "raw":
                continue
            cluster = _internals.cluster_of(live.handle)
            if cluster is not None and not cluster.closed:
                members.setdefault(id(cluster), []).append(live)
        plain: dict[tuple[str, str], list[Session]] = {}
        for s in sessions:
            if s.ssl or s.pid in app or (s.instance, s.pid, s.marker) in known:
                continue
            group = self.user_group[s.user]
            candidates = [
                lives for lives in members.values() if any(x.obj.identity.group == group for x in lives)
            ]
            if candidates and all(any(x.obj.identity.tls for x in lives) for lives in candidates):
                served = ", ".join(
                    sorted({x.obj.label for ls in candidates for x in ls if x.obj.identity.tls})
                )
                plain.setdefault((s.user, served), []).append(s)
        return [
            (
                f"{len(found)} background session(s) as {user} are plain text ("
                + ", ".join(
                    f"pid {s.pid} on {s.instance} application_name {s.application_name!r}" for s in found
                )
                + f"), serving a cluster where {served} require TLS",
                f"{user}:{served}",
            )
            for (user, served), found in plain.items()
        ]

    def _quiescence_problems(self, sessions: list[Session]) -> list[str]:
        problems = []
        clusters = registry.clusters()
        if clusters:
            problems.append(f"clusters left after the last close: {clusters}")
        tasks = library_tasks()
        if tasks:
            problems.append(f"aurora_async tasks left after the last close: {[t.get_coro() for t in tasks]}")
        if sessions:
            shown = ", ".join(
                f"{s.user}@{s.instance} pid {s.pid} {s.application_name or ''}" for s in sessions[:6]
            )
            problems.append(f"{len(sessions)} server sessions left after the last close: {shown}")
        return problems

    async def _check_sessions(self) -> None:
        pending = list(self.closed)
        first = await self._sessions()
        for closed in pending:
            self._learn_markers(closed, first)
        found: dict[str, list[tuple[str, str]]] = {}

        async def probe() -> list[str]:
            sessions = await self._sessions()
            found.clear()
            found["I4"] = [(p, p) for closed in pending for p in self._closed_problems(closed, sessions)]
            found["I4"] += self._superseded_problems(sessions)
            found["I5"] = self._background_tls_problems(sessions)
            if not self.lives:
                found["I6"] = [(p, p) for p in self._quiescence_problems(sessions)]
            # what was reported at an earlier step is not waited for again (STATEFUL_KEEP_GOING)
            return [
                t for i, problems in found.items() for t, k in problems if f"{i}:{k}" not in self._reported
            ]

        await settle(probe)
        for invariant, problems in found.items():
            for text, key in problems:
                self.violate(invariant, text, key=key)
        self.closed = [c for c in self.closed if c not in pending]
