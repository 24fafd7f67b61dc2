"""The model of the stateful test: identities, steps (and their text form), and the seeded generator.

Nothing here does I/O. A run is a list of :class:`Step`; each has a one-line text form (``open c1
alpha_plain``, ``unit c1 block inner=retry fault=failover@1``) that ``STATEFUL_STEPS`` replays as is.
The generator draws each step from a ``random.Random`` and the model's view of what is open, so a seed
gives the same steps as long as the run's outcomes (which connection the library closed, for
instance) are the same; the printed step list replays exactly.

Steps (labels: ``cN`` connections, raw connections and pool leases, ``pN`` pools):

- ``open cN IDENT [ro=1] [timeout=S]``: ``aurora_async.connect`` (``read_only=True``; its
  ``failover_timeout``); ``raw cN IDENT``: ``connect_raw``; ``pool pN IDENT``: ``create_pool``
  (PostgreSQL); ``acquire cN pN [ro=1]`` and ``release cN``; ``close cN|pN [how=...]`` (``close``,
  ``terminate``, MySQL ``ensure_closed``); ``close_all``;
- ``unit cN STYLE [inner=...] [end=abort] [outer=1] [fault=KIND@K]``: a unit of work (see below);
- ``read cN API``, ``idle_break cN API`` (the connection's instance resets its connections while the
  connection is idle, then API is called), ``read_only cN on|off [readers=down]``;
- ``fault KIND [dns=S] [on=cN] [r=0|1]``: failover, switchover, blackhole (with a call in flight on
  ``on``), reset_writer, reset_reader, reboot_reader, crash_reader, blackhole_reader;
- ``rotate USER``: a new password (and secret value); ``close_mid_failover cN IDENT
  outcome=completes|times_out [how=...]``: a connection closed while it fails over;
  ``await_background``: wait until the library has opened its own sessions (scenarios use it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

PARTS = 3  # rows per unit of work, one statement each (the "stmt" style writes them in one statement)

Engine = Literal["postgresql", "mysql"]
ObjKind = Literal["conn", "raw", "lease", "pool"]


@dataclass(frozen=True)
class Identity:
    """Who a connection is. ``group``: identities whose connections the library keys to one cluster
    today (same engine, host pattern, database and configured user: a Secrets Manager identity has no
    configured user). Only the invariant on background TLS uses it, to know which open connections a
    background session may serve."""

    name: str
    group: str
    user: str
    secret: str | None = None  # the Secrets Manager secret naming ``user`` ("admin", "report")
    ssl: str | None = None  # PostgreSQL: "disable" or "require"
    search_path: str | None = None  # PostgreSQL
    autocommit: bool | None = None  # MySQL: True, or None for aiomysql's default (off)
    sql_mode: str | None = None  # MySQL

    @property
    def tls(self) -> bool:
        return self.ssl == "require"

    @property
    def autocommit_on(self) -> bool:
        return bool(self.autocommit)


PG_IDENTITIES = {
    i.name: i
    for i in (
        Identity("alpha_plain", "alpha", "st_alpha", ssl="disable", search_path="tenant_a"),
        Identity("alpha_tls", "alpha", "st_alpha", ssl="require", search_path="tenant_b"),
        Identity("beta_tls", "beta", "st_beta", ssl="require", search_path="tenant_c"),
        Identity("admin_plain", "secret", "st_admin", secret="admin", ssl="disable", search_path="tenant_d"),
        Identity("report_tls", "secret", "st_report", secret="report", ssl="require", search_path="tenant_r"),
    )
}
MYSQL_IDENTITIES = {
    i.name: i
    for i in (
        Identity("alpha_auto", "alpha", "st_alpha", autocommit=True, sql_mode="ANSI_QUOTES"),
        Identity("alpha_manual", "alpha", "st_alpha", sql_mode="STRICT_ALL_TABLES"),
        Identity("beta_manual", "beta", "st_beta", sql_mode="NO_ZERO_DATE"),
        Identity("admin_auto", "secret", "st_admin", secret="admin", autocommit=True, sql_mode="ANSI_QUOTES"),
        Identity("report_manual", "secret", "st_report", secret="report", sql_mode="NO_ZERO_DATE"),
    )
}
USERS = ("st_alpha", "st_beta", "st_admin", "st_report")
SECRETS = {"admin": "st_admin", "report": "st_report"}


def identities(engine: Engine) -> dict[str, Identity]:
    return PG_IDENTITIES if engine == "postgresql" else MYSQL_IDENTITIES


# -- units of work --------------------------------------------------------------------------------
#
# style  PostgreSQL: block (async with conn.transaction()), manual (tx.start()/commit()), nested (a
#        savepoint block inside), stmt (one INSERT of all rows, autocommit); MySQL: begin (begin() ..
#        commit()), implicit (autocommit off: statements, then commit()), stmt (one INSERT of all rows)
# inner  what the application does around each statement inside the transaction: none, swallow (catches
#        TransactionResolutionUnknownError and goes on; re-runs a statement FailoverSuccessError
#        names), retry (retry_on_failover), attempts (attempts_of inline)
# end    commit, or abort (PostgreSQL: an exception out of the block / tx.rollback(); MySQL rollback())
# outer  1: attempts_of around the whole unit, reading back before a re-run (as an application should)
# fault  <kind>@<k>: injected before statement k (k = PARTS: before the commit)

PG_STYLES = ("block", "block", "manual", "nested", "stmt")
MYSQL_STYLES = ("begin", "begin", "implicit", "stmt")
INNER = ("none", "none", "swallow", "retry", "attempts")
UNIT_FAULTS = ("failover", "switchover", "reset", "reset")
READS = {"postgresql": ("fetch", "cursor", "prepare"), "mysql": ("cursor", "dict_cursor", "ping")}
IDLE_BREAKS = {
    "postgresql": ("execute", "fetchval", "transaction", "cursor_in_tx", "prepare"),
    "mysql": ("execute", "cursor", "begin", "commit_in_tx", "ping"),
}
FAULTS = (
    "failover",
    "failover",
    "switchover",
    "blackhole",
    "reset_writer",
    "reset_writer",
    "reset_reader",
    "reboot_reader",
    "crash_reader",
    "blackhole_reader",
)
DNS_LAGS = ("0", "0.5", "2")


@dataclass(frozen=True)
class Step:
    """One step: a kind, positional arguments and ``key=value`` options, with a one-line text form."""

    kind: str
    args: tuple[str, ...] = ()
    opts: tuple[tuple[str, str], ...] = ()

    def opt(self, name: str, default: str = "") -> str:
        return dict(self.opts).get(name, default)

    def __str__(self) -> str:
        return " ".join([self.kind, *self.args, *(f"{k}={v}" for k, v in self.opts)])

    @classmethod
    def parse(cls, text: str) -> Step:
        words = text.split()
        if not words:
            raise ValueError("an empty step")
        args = tuple(w for w in words[1:] if "=" not in w)
        opts = tuple(tuple(w.split("=", 1)) for w in words[1:] if "=" in w)
        return cls(words[0], args, opts)  # type: ignore[arg-type]


def parse_steps(text: str) -> list[Step]:
    """Steps separated by ``;`` or new lines (what a failing run prints)."""
    return [Step.parse(part) for line in text.splitlines() for part in line.split(";") if part.strip()]


def step(kind: str, *args: str, **opts: str | int | None) -> Step:
    return Step(kind, args, tuple((k, str(v)) for k, v in opts.items() if v is not None and v != ""))


# -- what the generator sees ----------------------------------------------------------------------


@dataclass
class Obj:
    """An open connection, raw connection, pool lease or pool, as the model knows it."""

    label: str
    kind: ObjKind
    identity: Identity
    read_only: bool = False
    pool: str | None = None  # a lease's pool
    leases: set[str] = field(default_factory=set)  # a pool's leases


@dataclass
class Model:
    engine: Engine
    objects: dict[str, Obj] = field(default_factory=dict)  # open ones, by label
    next_label: int = 0
    next_pool: int = 0

    def new_label(self) -> str:
        self.next_label += 1
        return f"c{self.next_label}"

    def new_pool(self) -> str:
        self.next_pool += 1
        return f"p{self.next_pool}"

    def of_kind(self, *kinds: ObjKind) -> list[Obj]:
        return [o for o in self.objects.values() if o.kind in kinds]

    def sessions(self) -> list[Obj]:
        """What the application runs statements on: connections and pool leases."""
        return self.of_kind("conn", "lease")


class Generator:
    """Draws the next step from the seed and the model (see the module docstring)."""

    def __init__(self, rng: random.Random, model: Model) -> None:
        self.rng = rng
        self.model = model
        self.idents = identities(model.engine)

    def _ident(self) -> str:
        return self.rng.choice(sorted(self.idents))

    def next(self) -> Step:
        rng, model = self.rng, self.model
        pg = model.engine == "postgresql"
        open_count = len(model.objects)
        sessions = model.sessions()
        writers = [o for o in sessions if not o.read_only]
        pools = model.of_kind("pool")
        free_pools = [p for p in pools if len(p.leases) < 3]
        leases = model.of_kind("lease")
        choices: list[tuple[float, Callable[[], Step]]] = [
            (7.0 if open_count < 2 else 2.5 if open_count < 6 else 0.0, self._open),
            (0.6 if open_count < 7 else 0.0, lambda: step("raw", model.new_label(), self._ident())),
            (1.0 if pg and len(pools) < 2 else 0.0, lambda: step("pool", model.new_pool(), self._ident())),
            (2.0 if free_pools else 0.0, lambda: self._acquire(free_pools)),
            (1.5 if leases else 0.0, lambda: step("release", rng.choice(leases).label)),
            (1.2 if len(leases) < open_count else 0.0, self._close),
            (9.0 if writers else 0.0, lambda: self._unit(writers)),
            (2.0 if sessions else 0.0, lambda: self._read(sessions)),
            (1.5 if sessions else 0.0, lambda: self._idle_break(sessions)),
            (1.2 if sessions else 0.0, lambda: self._read_only(sessions)),
            (3.5, self._fault),
            (0.7, lambda: step("rotate", rng.choice(sorted({i.user for i in self.idents.values()})))),
            (0.8, self._close_mid_failover),
            (0.3 if open_count else 0.0, lambda: step("close_all")),
        ]
        total = sum(w for w, _ in choices)
        pick = rng.uniform(0, total)
        for weight, make in choices:
            if pick < weight:
                return make()
            pick -= weight
        return choices[-1][1]()

    def _open(self) -> Step:
        ro = 1 if self.rng.random() < 0.15 else None
        return step("open", self.model.new_label(), self._ident(), ro=ro)

    def _acquire(self, pools: list[Obj]) -> Step:
        pool = self.rng.choice(pools)
        return step("acquire", self.model.new_label(), pool.label, ro=1 if self.rng.random() < 0.15 else None)

    def _close(self) -> Step:
        target = self.rng.choice(sorted(o.label for o in self.model.objects.values() if o.kind != "lease"))
        how = None
        kind = self.model.objects[target].kind
        if self.model.engine == "mysql" and kind == "conn":
            how = self.rng.choice(("ensure_closed", "close"))  # aiomysql's close() is synchronous
        elif self.model.engine == "postgresql" and kind in ("conn", "raw") and self.rng.random() < 0.3:
            how = "terminate"
        return step("close", target, how=how)

    def _unit(self, writers: list[Obj]) -> Step:
        rng = self.rng
        target = rng.choice(writers)
        ident = target.identity
        pg = self.model.engine == "postgresql"
        styles = PG_STYLES if pg else MYSQL_STYLES
        style = rng.choice([s for s in styles if s != "implicit" or not ident.autocommit_on])
        opts: dict[str, str | int | None] = {}
        if style != "stmt":
            opts["inner"] = rng.choice(INNER)
            opts["end"] = "abort" if rng.random() < 0.2 else None
            if opts["end"] is None and rng.random() < 0.3:
                opts["outer"] = 1
        if rng.random() < 0.55:
            fault = rng.choice(UNIT_FAULTS)
            at = 0 if style == "stmt" else rng.randrange(PARTS + 1)
            if at == PARTS and style != "stmt" and rng.random() < 0.3 and not ident.tls:
                fault = "drop_commit"  # the COMMIT runs, its reply is lost (the proxy sees plain text only)
            opts["fault"] = f"{fault}@{at}"
        return step("unit", target.label, style, **opts)

    def _read(self, sessions: list[Obj]) -> Step:
        return step("read", self.rng.choice(sessions).label, self.rng.choice(READS[self.model.engine]))

    def _idle_break(self, sessions: list[Obj]) -> Step:
        return step(
            "idle_break", self.rng.choice(sessions).label, self.rng.choice(IDLE_BREAKS[self.model.engine])
        )

    def _read_only(self, sessions: list[Obj]) -> Step:
        target = self.rng.choice(sessions)
        if target.read_only:
            return step("read_only", target.label, "off")
        # sometimes with every reader down: the session stays on the writer, read-only in name
        return step("read_only", target.label, "on", readers="down" if self.rng.random() < 0.2 else None)

    def _fault(self) -> Step:
        kind = self.rng.choice(FAULTS)
        dns = self.rng.choice(DNS_LAGS) if kind in ("failover", "switchover", "blackhole") else None
        on = reader = None
        if kind == "blackhole":
            busy = [o.label for o in self.model.sessions() if not o.read_only]
            on = self.rng.choice(busy) if busy else None
        if kind.endswith("_reader"):
            reader = self.rng.randrange(2)  # which of the readers, in the simulator's order
        return step("fault", kind, dns=dns, on=on, r=reader)

    def _close_mid_failover(self) -> Step:
        """A connection closed while it is failing over; it shares a cluster with an open object when
        there is one (so that a double release of the cluster shows)."""
        shared = [o.identity.name for o in self.model.objects.values()]
        ident = self.rng.choice(shared) if shared else self._ident()
        outcome = self.rng.choice(("completes", "times_out"))
        pg = self.model.engine == "postgresql"
        how = self.rng.choice(("close", "terminate") if pg else ("ensure_closed", "close"))
        return step("close_mid_failover", self.model.new_label(), ident, outcome=outcome, how=how)


def describe(steps: Iterable[Step]) -> str:
    return "; ".join(str(s) for s in steps)
