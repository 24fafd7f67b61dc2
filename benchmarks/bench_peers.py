"""Side by side on one simulated cluster: aurora_async, the plain driver and the AWS Advanced Python Wrapper,
on PostgreSQL and on MySQL.

    .venv/bin/python benchmarks/bench_peers.py [--engine postgresql|mysql|both] [--rounds 3]
        [--downtime-runs 2] [--sizes 1 200] [--demo]

Contenders, each run in a process of its own (``benchmarks/peers/contender.py``), in a shuffled order
every round so that none always runs on a warmer or colder machine. PostgreSQL:

- ``asyncpg``: plain asyncpg through the writer cluster endpoint (stale DNS after a failover);
- ``asyncpg_multihost``: plain asyncpg listing every instance, ``target_session_attrs=read-write``;
- ``aws_wrapper_aio``: the incumbent's ``aio`` wrapper on psycopg's AsyncConnection, default plugins
  (``initial_connection, aurora_connection_tracker, failover_v2, host_monitoring_v2``), the same
  ``cluster_instance_host_pattern``; it runs in ``benchmarks/.venv-peers`` (``make bench`` creates it:
  its botocore pin conflicts with aioboto3);
- ``aws_wrapper_sync``: the incumbent's sync wrapper, for reference (latency at one connection only);
- ``aurora_async``: this library on asyncpg, default plugins.

MySQL (MariaDB simulator, ``topology="aurora"``: its proxy rewrites Aurora MySQL's catalog SQL):

- ``aiomysql``: plain aiomysql through the writer cluster endpoint, autocommit on, every connect and
  statement bounded by ``asyncio.wait_for`` (5 s; aiomysql has no statement timeout);
- ``aws_wrapper_aio``: the incumbent's ``aio`` wrapper on aiomysql, default plugins,
  ``wrapper_dialect="aurora-mysql"``, the same ``cluster_instance_host_pattern``;
- ``aurora_async``: this library with a ``mysql://`` DSN, default plugins.

Workloads: per-operation latency and throughput (``SELECT 1``, a 100-row fetch, a one-row INSERT in a
transaction) at 1 and 32 connections, throughput at 64; connect time; application-visible downtime
(per connection: last successful write before the fault to the first one after) for a crash failover
and a black-holed writer, at 1 and 200 connections. Plain asyncpg gets ``command_timeout=5`` (without
one a black-holed writer hangs it for good). A contender whose process fails is recorded as
``failed: <its last words>``. Writes ``benchmarks/results/peers.{json,md}`` (PostgreSQL) and
``benchmarks/results/peers_mysql.{json,md}``.

``--demo`` (``make demo``): one crash failover with 4 connections per PostgreSQL contender, drawn as
``benchmarks/results/failover_timeline.png`` (matplotlib, the optional ``plot`` extra) and written as
``failover_timeline.csv``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import asyncpg
from _common import RESULTS, command, commit, header, machine, percentile, summary, write

from aurora_async.testing import AuroraSimulator, FailoverDelays
from aurora_async.testing.mysql._server import MariaDbBinaries

HERE = Path(__file__).resolve().parent
CONTENDER = HERE / "peers" / "contender.py"
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"


@dataclass(frozen=True)
class Engine:
    """What differs between the PostgreSQL and the MySQL side by side."""

    name: str  # the simulator's and the contender's engine
    contenders: tuple[str, ...]
    baseline: str  # the plain driver, for the latency table's ratio
    user: str
    database: str
    serial: str  # an auto-incrementing primary key's column type
    results: str  # benchmarks/results/<results>.{json,md}
    title: str

    @property
    def asynchronous(self) -> tuple[str, ...]:
        return tuple(c for c in self.contenders if c != "aws_wrapper_sync")

    def simulator(self, **options: Any) -> AuroraSimulator:
        return AuroraSimulator(self.name, instances=3, topology="aurora", **options)


ENGINES = {
    "postgresql": Engine(
        "postgresql",
        ("asyncpg", "asyncpg_multihost", "aws_wrapper_aio", "aws_wrapper_sync", "aurora_async"),
        "asyncpg",
        "postgres",
        "postgres",
        "bigserial",
        "peers",
        "aurora_async vs plain asyncpg vs the AWS Advanced Python Wrapper",
    ),
    "mysql": Engine(
        "mysql",
        ("aiomysql", "aws_wrapper_aio", "aurora_async"),
        "aiomysql",
        "admin",
        "app",
        "bigint AUTO_INCREMENT",
        "peers_mysql",
        "MySQL: aurora_async vs plain aiomysql vs the AWS Advanced Python Wrapper",
    ),
}
POSTGRESQL = ENGINES["postgresql"]
LATENCY_CASES = [  # (kind, connections, operations per connection)
    ("select1", 1, 1000),
    ("fetch100", 1, 500),
    ("insert_tx", 1, 500),
    ("select1", 32, 100),
    ("fetch100", 32, 50),
    ("insert_tx", 32, 50),
    ("select1", 64, 100),
]
DELAYS = FailoverDelays(promotion=1.0)  # the writer is dead for a second before a replica is promoted
WINDOW = 15.0  # seconds of observation after the fault
PAUSE = 0.05  # between one connection's writes


class ContenderFailed(Exception):
    """A contender's process failed; the message says why (its last line on stderr)."""


def python_for(contender: str) -> str:
    return str(PEERS_PYTHON) if contender.startswith("aws_wrapper") else sys.executable


def base_spec(sim: AuroraSimulator, engine: Engine, contender: str, workload: str) -> dict[str, Any]:
    return {
        "engine": engine.name,
        "contender": contender,
        "workload": workload,
        "cluster": sim.cluster_endpoint,
        "pattern": sim.instance_host_pattern,
        "instance_ids": sim.instance_ids,
        "user": engine.user,
        "database": engine.database,
        "timeout": 5.0,
        "command_timeout": 5.0,
    }


@contextlib.asynccontextmanager
async def contender_process(spec: dict[str, Any]) -> AsyncIterator[asyncio.subprocess.Process]:
    """The contender's process, with pipes; killed (and reaped) if it is still running at the end."""
    proc = await asyncio.create_subprocess_exec(
        python_for(spec["contender"]),
        str(CONTENDER),
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def last_words(err: bytes) -> str:
    """The last line a failed process wrote to stderr (an exception's type and message), table-safe."""
    # asyncio's "Task was destroyed but it is pending!" at interpreter exit is noise, not the reason
    noise = ("Task was destroyed", "task: <Task")
    lines = [
        line.strip()
        for line in err.decode(errors="replace").splitlines()
        if line.strip() and not line.strip().startswith(noise)
    ]
    reason = lines[-1] if lines else "exited without a word"
    return reason.replace("|", "/")[:160]


async def finish(proc: asyncio.subprocess.Process, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The contender's result: the last line it printed. Raises ``ContenderFailed``."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        raise ContenderFailed(f"no result within {timeout:.0f} s") from None
    if proc.returncode != 0:
        print(f"{spec['contender']} {spec['workload']} failed:\n{err.decode()[-3000:]}", file=sys.stderr)
        raise ContenderFailed(f"{last_words(err)} (exit status {proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def run_contender(spec: dict[str, Any]) -> dict[str, Any]:
    """The contender's result, or ``{"failed": reason}``."""
    try:
        async with contender_process(spec) as proc:
            return await finish(proc, spec, 600)
    except ContenderFailed as exc:
        return {"failed": str(exc)}


async def create_table(sim: AuroraSimulator, engine: Engine, table: str, columns: str) -> None:
    sql = f"CREATE TABLE {table}(id {engine.serial} PRIMARY KEY, {columns})"
    if engine.name == "mysql":
        host, port = sim.cluster_endpoint.rsplit(":", 1)
        conn = await aiomysql.connect(host=host, port=int(port), user=engine.user, db=engine.database)
        async with conn.cursor() as cur:
            await cur.execute(sql)
        await conn.ensure_closed()
        return
    pg = await asyncpg.connect(sim.dsn("cluster"))
    await pg.execute(sql)
    await pg.close()


async def latency_rounds(engine: Engine, sim: AuroraSimulator, rounds: int) -> dict[str, Any]:
    results: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    await create_table(sim, engine, "items", "worker int, note text")
    for r in range(rounds):
        for kind, connections, ops in LATENCY_CASES:
            case = f"{kind}@{connections}"
            contenders = list(engine.contenders if connections == 1 else engine.asynchronous)
            random.shuffle(contenders)
            for contender in contenders:
                spec = base_spec(sim, engine, contender, "latency") | {
                    "kind": kind,
                    "connections": connections,
                    "ops": ops,
                }
                results[case][contender].append(await run_contender(spec))
            print(f"{engine.name} round {r + 1}/{rounds} {case}: done", file=sys.stderr)
        contenders = list(engine.contenders)
        random.shuffle(contenders)
        for contender in contenders:
            spec = base_spec(sim, engine, contender, "connect") | {"ops": 20}
            results["connect"][contender].append(await run_contender(spec))
    return results


async def wait_ready(proc: asyncio.subprocess.Process, spec: dict[str, Any]) -> None:
    """Until the contender's "ready" line: every connection has written once."""
    assert proc.stdout is not None
    try:
        ready = await asyncio.wait_for(proc.stdout.readline(), 90)
    except TimeoutError:
        raise ContenderFailed("not ready within 90 s") from None
    if not ready:
        await finish(proc, spec, 10)  # raises with the reason it gave
        raise ContenderFailed("exited before it was ready")


async def inject(sim: AuroraSimulator, fault: str) -> tuple[float, float]:
    """The fault, then Aurora's failover: when the fault began and when the replica was promoted."""
    writer = sim.writer_id
    fault_at = time.monotonic()
    if fault == "blackhole":
        await sim.blackhole(writer)
    report = await sim.failover()
    return fault_at, next(e.at for e in report.events if e.step == "replica promoted")


def outages(events: list[list[Any]], connections: int, fault_at: float, stop_at: float) -> dict[str, Any]:
    """Per connection, the longest gap between two successes that ends after the fault was injected (a
    write may still succeed in the few ms the simulator takes to apply the fault); a connection with no
    success in the last second of the window never recovered."""
    gaps = []
    unrecovered = 0
    for worker in range(connections):
        done = sorted(t for t, w, ok in events if w == worker and ok)
        if not done or done[-1] < stop_at - 1.0:
            unrecovered += 1
            continue
        gaps.append(max((b - a for a, b in zip(done, done[1:], strict=False) if b > fault_at), default=0.0))
    return {"gaps": gaps, "unrecovered": unrecovered, "errors": sum(1 for e in events if not e[2])}


async def downtime_run(engine: Engine, contender: str, connections: int, fault: str) -> dict[str, Any]:
    """A fresh cluster, ``connections`` writers of one contender, one fault; per-connection downtime.
    Raises ``ContenderFailed``."""
    async with engine.simulator(delays=DELAYS, max_connections=600) as sim:
        await create_table(sim, engine, "beats", "worker int")
        spec = base_spec(sim, engine, contender, "downtime") | {"connections": connections, "pause": PAUSE}
        async with contender_process(spec) as proc:
            assert proc.stdin is not None
            await wait_ready(proc, spec)
            await asyncio.sleep(1.0)  # steady state before the fault (a benchmark's pacing)
            fault_at, promoted = await inject(sim, fault)
            await asyncio.sleep(max(0.0, fault_at + WINDOW - time.monotonic()))  # the observation window
            stop_at = time.monotonic()
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
            result = await finish(proc, spec, 60)
    events = result["events"]
    return outages(events, connections, fault_at, stop_at) | {
        "hung": result["hung"],
        "fault_at": fault_at,
        "promoted": promoted,
        "events": events,
    }


def new_slot() -> dict[str, Any]:
    return {"gaps": [], "unrecovered": 0, "errors": 0, "hung": 0, "runs": 0, "failed": []}


async def downtime_rounds(engine: Engine, runs: int, sizes: list[int]) -> dict[str, Any]:
    pooled: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(new_slot))
    for r in range(runs):
        for fault in ("crash", "blackhole"):
            for connections in sizes:
                contenders = list(engine.asynchronous)
                random.shuffle(contenders)
                for contender in contenders:
                    case = f"{fault}@{connections}"
                    slot = pooled[case][contender]
                    slot["runs"] += 1
                    try:
                        outcome = await downtime_run(engine, contender, connections, fault)
                    except ContenderFailed as exc:
                        slot["failed"].append(str(exc))
                        print(f"run {r + 1}/{runs} {case} {contender}: failed: {exc}", file=sys.stderr)
                        continue
                    slot["gaps"] += outcome["gaps"]
                    for key in ("unrecovered", "errors", "hung"):
                        slot[key] += outcome[key]
                    p95 = percentile(outcome["gaps"], 0.95) if outcome["gaps"] else float("nan")
                    print(
                        f"{engine.name} run {r + 1}/{runs} {case} {contender}: p95 {p95 * 1000:.0f} ms, "
                        f"unrecovered {outcome['unrecovered']}",
                        file=sys.stderr,
                    )
    return pooled


def gap_stats(gaps: list[float]) -> dict[str, float]:
    if not gaps:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "n": 0}
    return {"p50": percentile(gaps, 0.5), "p95": percentile(gaps, 0.95), "max": max(gaps), "n": len(gaps)}


def failure(reasons: list[str], runs: int) -> dict[str, Any]:
    """``{}``, or the first reason and how many of the runs failed."""
    return {"failed": reasons[0], "failed_runs": f"{len(reasons)}/{runs}"} if reasons else {}


def latency_cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ranges over the rounds that did not fail, and the failures."""
    ok = [run for run in runs if "failed" not in run]
    cell = {key: summary([run[key] for run in ok]) for key in ok[0]} if ok else {}
    return cell | failure([run["failed"] for run in runs if "failed" in run], len(runs))


def downtime_cell(slot: dict[str, Any]) -> dict[str, Any]:
    counts = {k: slot[k] for k in ("unrecovered", "errors", "hung")}
    return gap_stats(slot["gaps"]) | counts | failure(slot["failed"], slot["runs"])


def label(contender: str, cell: dict[str, Any]) -> str:
    """The contender's name, with its failures if some runs failed but not all."""
    return f"{contender} (failed {cell['failed_runs']}: {cell['failed']})" if "failed" in cell else contender


def failed_row(first: str, contender: str, cell: dict[str, Any], columns: int) -> str:
    """A table row for a contender with no run that worked."""
    return f"| {first} | {contender} | failed: {cell['failed']} |" + " – |" * (columns - 1)


def engine_versions(engine: Engine) -> dict[str, str]:
    if engine.name != "mysql":
        return {}
    binaries = MariaDbBinaries.find()
    out = subprocess.run([binaries.server, "--version"], capture_output=True, text=True, check=False)
    version = out.stdout.split(" Ver ", 1)[-1].split(" for ", 1)[0].strip()  # "10.11.19-MariaDB-..."
    return {"mariadb": f"MariaDB {version}", "aiomysql": aiomysql.__version__}


def run_line(engine: Engine, result: dict[str, Any], args: argparse.Namespace) -> str:
    info = result["machine"]
    mysql = f"; {info['mariadb']}, aiomysql {info['aiomysql']}" if engine.name == "mysql" else ""
    return (
        f"Run on {result['date']}; aws-advanced-python-wrapper {info['aws-advanced-python-wrapper']}{mysql}. "
        f"{args.rounds} interleaved rounds (contender order shuffled each round); medians over rounds, "
        "range in brackets."
    )


def latency_lines(engine: Engine, result: dict[str, Any]) -> list[str]:
    lines = [
        "## Latency and throughput",
        "",
        f"| workload | contender | ops/s | p50 µs | p95 µs | vs {engine.baseline} (p50) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case, sides in result["latency"].items():
        if case == "connect":
            continue
        base = sides[engine.baseline].get("p50_us", {}).get("median", float("nan"))
        for c in engine.contenders:
            if c not in sides:
                continue
            s = sides[c]
            if "p50_us" not in s:
                lines.append(failed_row(case, c, s, 4))
                continue
            ops, p50, p95 = s["ops_per_s"], s["p50_us"], s["p95_us"]
            lines.append(
                f"| {case} | {label(c, s)} | {ops['median']:.0f} [{ops['min']:.0f}–{ops['max']:.0f}] | "
                f"{p50['median']:.0f} | {p95['median']:.0f} | {p50['median'] / base:.3f} |"
            )
    return lines


def connect_lines(engine: Engine, result: dict[str, Any]) -> list[str]:
    lines = ["## Connect (open, SELECT 1, close)", "", "| contender | p50 ms | p95 ms |", "|---|---:|---:|"]
    for c in engine.contenders:
        s = result["latency"]["connect"][c]
        if "p50_ms" not in s:
            lines.append(f"| {c} | failed: {s['failed']} | – |")
            continue
        lines.append(f"| {label(c, s)} | {s['p50_ms']['median']:.1f} | {s['p95_ms']['median']:.1f} |")
    return lines


def downtime_lines(engine: Engine, result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        "## Application-visible downtime",
        "",
        "Per connection: the longest gap between two successful writes that ends after the fault "
        f"({args.downtime_runs} runs per case, pooled; a fresh cluster each run; the replica is promoted "
        f"{DELAYS.promotion:.0f} s after the writer dies; the cluster endpoint follows 3 s after that; "
        f"{WINDOW:.0f} s observed). "
        "Unrecovered: connections with no successful write in the last second of the window.",
        "",
        "| fault @ connections | contender | p50 | p95 | max | unrecovered | errors seen |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for case, sides in result["downtime"].items():
        for c in engine.asynchronous:
            s = sides[c]
            if s["n"] == 0 and "failed" in s:
                lines.append(failed_row(case, c, s, 5))
                continue
            lines.append(
                f"| {case} | {label(c, s)} | {s['p50'] * 1000:.0f} ms | {s['p95'] * 1000:.0f} ms "
                f"| {s['max'] * 1000:.0f} ms | {s['unrecovered']} | {s['errors']} |"
            )
    return lines


def report(
    engine: Engine, latency: dict[str, Any], downtime: dict[str, Any], args: argparse.Namespace
) -> None:
    result: dict[str, Any] = {
        "benchmark": engine.results,
        "command": command(),
        "commit": commit(),
        "machine": machine() | {"aws-advanced-python-wrapper": peer_version()} | engine_versions(engine),
        "date": time.strftime("%Y-%m-%d"),
        "latency": {
            case: {c: latency_cell(runs) for c, runs in sides.items()} for case, sides in latency.items()
        },
        "downtime": {
            case: {c: downtime_cell(slot) for c, slot in sides.items()} for case, sides in downtime.items()
        },
    }
    lines = [*header(engine.title, result), run_line(engine, result, args), ""]
    lines += latency_lines(engine, result)
    lines += ["", *connect_lines(engine, result)]
    lines += ["", *downtime_lines(engine, result, args)]
    write(engine.results, result, lines)


def peer_version() -> str:
    code = "import importlib.metadata as m; print(m.version('aws_advanced_python_wrapper'))"
    out = subprocess.run([str(PEERS_PYTHON), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


async def demo() -> None:
    """One crash failover, 4 connections per contender: a timeline picture and its CSV."""
    rows = []
    for contender in POSTGRESQL.asynchronous:
        try:
            outcome = await downtime_run(POSTGRESQL, contender, 4, "crash")
        except ContenderFailed as exc:
            raise SystemExit(f"{contender} failed: {exc}") from None
        for t, worker, ok in outcome["events"]:
            rows.append((contender, worker, round(t - outcome["fault_at"], 4), int(ok)))
        rows.append((contender, -1, round(outcome["promoted"] - outcome["fault_at"], 4), -1))
        s = gap_stats(outcome["gaps"])
        print(
            f"{contender:>18}: downtime p50 {s['p50'] * 1000:6.0f} ms, max {s['max'] * 1000:6.0f} ms, "
            f"errors {outcome['errors']}"
        )
    RESULTS.mkdir(exist_ok=True)
    text = io.StringIO()
    out = csv.writer(text)
    out.writerow(["contender", "worker", "seconds_after_fault", "ok (1 success, 0 error, -1 promotion)"])
    out.writerows(rows)
    (RESULTS / "failover_timeline.csv").write_text(text.getvalue())
    print(f"wrote {RESULTS / 'failover_timeline.csv'}")
    draw(rows, RESULTS / "failover_timeline.png")


def draw(rows: list[tuple[str, int, float, int]], path: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - the optional 'plot' extra

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no picture, only the CSV")
        return
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for y, contender in enumerate(POSTGRESQL.asynchronous):
        mine = [r for r in rows if r[0] == contender and r[3] >= 0 and -2 <= r[2] <= WINDOW]
        ok = [r[2] for r in mine if r[3] == 1]
        bad = [r[2] for r in mine if r[3] == 0]
        ax.scatter(ok, [y] * len(ok), marker="|", s=60, color="tab:green", linewidths=0.8)
        ax.scatter(bad, [y] * len(bad), marker="x", s=30, color="tab:red", linewidths=0.8)
        promoted = next(r[2] for r in rows if r[0] == contender and r[3] == -1)
        ax.plot([promoted, promoted], [y - 0.4, y + 0.4], color="tab:blue", linewidth=1.5)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(POSTGRESQL.asynchronous)), POSTGRESQL.asynchronous)
    ax.set_xlabel("seconds after the writer died (blue: replica promoted; green: write ok; red: error)")
    ax.set_title("Writes through an Aurora crash failover (4 connections per contender, simulated cluster)")
    ax.set_xlim(-2, 12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


async def side_by_side(engine: Engine, args: argparse.Namespace) -> None:
    """One engine's latency rounds (or the last run's, ``--reuse-latency``), downtime runs and report."""
    raw = RESULTS / f"{engine.results}_latency_raw.json"
    if args.reuse_latency:  # only the downtime part again, with the latency rounds of the last run
        latency = json.loads(raw.read_text())
    else:
        async with engine.simulator(max_connections=300) as sim:
            latency = await latency_rounds(engine, sim, args.rounds)
        RESULTS.mkdir(exist_ok=True)
        raw.write_text(json.dumps(latency))
    downtime = await downtime_rounds(engine, args.downtime_runs, args.sizes)
    report(engine, latency, downtime, args)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("postgresql", "mysql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--downtime-runs", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--demo", action="store_true", help="PostgreSQL only")
    parser.add_argument("--reuse-latency", action="store_true", help="downtime only; latency as last run")
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing: run `make bench` (it creates benchmarks/.venv-peers)")
    if args.demo:
        await demo()
        return
    for name in ("postgresql", "mysql") if args.engine == "both" else (args.engine,):
        await side_by_side(ENGINES[name], args)


if __name__ == "__main__":
    asyncio.run(main())
