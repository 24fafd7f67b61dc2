"""Side by side on one simulated cluster: aurora_async, plain asyncpg and the AWS Advanced Python Wrapper.

    .venv/bin/python benchmarks/bench_peers.py [--rounds 3] [--downtime-runs 2] [--demo]

Contenders, each run in a process of its own (``benchmarks/peers/contender.py``), in a shuffled order
every round so that none always runs on a warmer or colder machine:

- ``asyncpg``: plain asyncpg through the writer cluster endpoint (stale DNS after a failover);
- ``asyncpg_multihost``: plain asyncpg listing every instance, ``target_session_attrs=read-write``;
- ``aws_wrapper_aio``: the incumbent's ``aio`` wrapper on psycopg's AsyncConnection, default plugins
  (``initial_connection, aurora_connection_tracker, failover_v2, host_monitoring_v2``), the same
  ``cluster_instance_host_pattern``; it runs in ``benchmarks/.venv-peers`` (``make bench`` creates it:
  its botocore pin conflicts with aioboto3);
- ``aws_wrapper_sync``: the incumbent's sync wrapper, for reference (latency at one connection only);
- ``aurora_async``: this library on asyncpg, default plugins.

Workloads: per-operation latency and throughput (``SELECT 1``, a 100-row fetch, a one-row INSERT in a
transaction) at 1 and 32 connections, throughput at 64; connect time; application-visible downtime
(per connection: last successful write before the fault to the first one after) for a crash failover
and a black-holed writer, at 1 and 200 connections. Plain asyncpg gets ``command_timeout=5`` (without
one a black-holed writer hangs it for good). Writes ``benchmarks/results/peers.{json,md}``.

``--demo`` (``make demo``): one crash failover with 4 connections per contender, drawn as
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
from pathlib import Path
from typing import Any

import asyncpg
from _common import RESULTS, command, commit, header, machine, percentile, summary, write

from aurora_async.testing import AuroraSimulator, FailoverDelays

HERE = Path(__file__).resolve().parent
CONTENDER = HERE / "peers" / "contender.py"
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
ALL = ("asyncpg", "asyncpg_multihost", "aws_wrapper_aio", "aws_wrapper_sync", "aurora_async")
ASYNC = tuple(c for c in ALL if c != "aws_wrapper_sync")
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


def python_for(contender: str) -> str:
    return str(PEERS_PYTHON) if contender.startswith("aws_wrapper") else sys.executable


def base_spec(sim: AuroraSimulator, contender: str, workload: str) -> dict[str, Any]:
    return {
        "contender": contender,
        "workload": workload,
        "cluster": sim.cluster_endpoint,
        "pattern": sim.instance_host_pattern,
        "instance_ids": sim.instance_ids,
        "user": "postgres",
        "database": "postgres",
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


async def finish(proc: asyncio.subprocess.Process, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The contender's result: the last line it printed."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{spec['contender']} {spec['workload']} failed:\n{err.decode()[-3000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def run_contender(spec: dict[str, Any]) -> dict[str, Any]:
    async with contender_process(spec) as proc:
        return await finish(proc, spec, 600)


async def latency_rounds(sim: AuroraSimulator, rounds: int) -> dict[str, Any]:
    results: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    conn = await sim_connect(sim)
    await conn.execute("CREATE TABLE items(id bigserial PRIMARY KEY, worker int, note text)")
    await conn.close()
    for r in range(rounds):
        for kind, connections, ops in LATENCY_CASES:
            case = f"{kind}@{connections}"
            contenders = list(ALL if connections == 1 else ASYNC)
            random.shuffle(contenders)
            for contender in contenders:
                spec = base_spec(sim, contender, "latency") | {
                    "kind": kind,
                    "connections": connections,
                    "ops": ops,
                }
                results[case][contender].append(await run_contender(spec))
            print(f"round {r + 1}/{rounds} {case}: done", file=sys.stderr)
        contenders = list(ALL)
        random.shuffle(contenders)
        for contender in contenders:
            spec = base_spec(sim, contender, "connect") | {"ops": 20}
            results["connect"][contender].append(await run_contender(spec))
    return results


async def sim_connect(sim: AuroraSimulator) -> asyncpg.Connection:
    return await asyncpg.connect(sim.dsn("cluster"))


async def downtime_run(contender: str, connections: int, fault: str) -> dict[str, Any]:
    """A fresh cluster, ``connections`` writers of one contender, one fault; per-connection downtime."""
    async with AuroraSimulator(instances=3, delays=DELAYS, max_connections=600) as sim:
        conn = await sim_connect(sim)
        await conn.execute("CREATE TABLE beats(id bigserial PRIMARY KEY, worker int)")
        await conn.close()
        spec = base_spec(sim, contender, "downtime") | {"connections": connections, "pause": PAUSE}
        async with contender_process(spec) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            if not await asyncio.wait_for(proc.stdout.readline(), 90):  # its "ready" line
                _, err = await asyncio.wait_for(proc.communicate(), 10)
                raise SystemExit(f"{contender} did not start:\n{err.decode()[-3000:]}")
            await asyncio.sleep(1.0)  # steady state before the fault (a benchmark's pacing)
            writer = sim.writer_id
            fault_at = time.monotonic()
            if fault == "blackhole":
                await sim.blackhole(writer)
            report = await sim.failover()
            promoted = next(e.at for e in report.events if e.step == "replica promoted")
            await asyncio.sleep(max(0.0, fault_at + WINDOW - time.monotonic()))  # the observation window
            stop_at = time.monotonic()
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
            result = await finish(proc, spec, 60)
    events = result["events"]
    gaps = []
    unrecovered = 0
    for worker in range(connections):
        # the outage is the longest gap between two successes that ends after the fault was injected
        # (a write may still succeed in the few ms the simulator takes to apply the fault); a
        # connection with no success in the last second of the window never recovered
        done = sorted(t for t, w, ok in events if w == worker and ok)
        if not done or done[-1] < stop_at - 1.0:
            unrecovered += 1
            continue
        gaps.append(max((b - a for a, b in zip(done, done[1:], strict=False) if b > fault_at), default=0.0))
    return {
        "gaps": gaps,
        "unrecovered": unrecovered,
        "errors": sum(1 for e in events if not e[2]),
        "hung": result["hung"],
        "fault_at": fault_at,
        "promoted": promoted,
        "events": events,
    }


async def downtime_rounds(runs: int, sizes: list[int]) -> dict[str, Any]:
    pooled: dict[str, dict[str, dict[str, Any]]] = defaultdict(
        lambda: defaultdict(lambda: {"gaps": [], "unrecovered": 0, "errors": 0, "hung": 0})
    )
    for r in range(runs):
        for fault in ("crash", "blackhole"):
            for connections in sizes:
                contenders = list(ASYNC)
                random.shuffle(contenders)
                for contender in contenders:
                    outcome = await downtime_run(contender, connections, fault)
                    slot = pooled[f"{fault}@{connections}"][contender]
                    slot["gaps"] += outcome["gaps"]
                    for key in ("unrecovered", "errors", "hung"):
                        slot[key] += outcome[key]
                    p95 = percentile(outcome["gaps"], 0.95) if outcome["gaps"] else float("nan")
                    print(
                        f"run {r + 1}/{runs} {fault}@{connections} {contender}: p95 {p95 * 1000:.0f} ms, "
                        f"unrecovered {outcome['unrecovered']}",
                        file=sys.stderr,
                    )
    return pooled


def gap_stats(gaps: list[float]) -> dict[str, float]:
    if not gaps:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "n": 0}
    return {"p50": percentile(gaps, 0.5), "p95": percentile(gaps, 0.95), "max": max(gaps), "n": len(gaps)}


def report(latency: dict[str, Any], downtime: dict[str, Any], args: argparse.Namespace) -> None:
    result: dict[str, Any] = {
        "benchmark": "peers",
        "command": command(),
        "commit": commit(),
        "machine": machine() | {"aws-advanced-python-wrapper": peer_version()},
        "date": time.strftime("%Y-%m-%d"),
        "latency": {
            case: {
                c: {key: summary([run[key] for run in runs]) for key in runs[0]} for c, runs in sides.items()
            }
            for case, sides in latency.items()
        },
        "downtime": {
            case: {
                c: gap_stats(slot["gaps"]) | {k: slot[k] for k in ("unrecovered", "errors", "hung")}
                for c, slot in sides.items()
            }
            for case, sides in downtime.items()
        },
    }
    lines = [
        *header("aurora_async vs plain asyncpg vs the AWS Advanced Python Wrapper", result),
        f"Run on {result['date']}; aws-advanced-python-wrapper "
        f"{result['machine']['aws-advanced-python-wrapper']}. "
        f"{args.rounds} interleaved rounds (contender order shuffled each round); medians over rounds, "
        "range in brackets.",
        "",
        "## Latency and throughput",
        "",
        "| workload | contender | ops/s | p50 µs | p95 µs | vs asyncpg (p50) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case, sides in result["latency"].items():
        if case == "connect":
            continue
        base = sides["asyncpg"]["p50_us"]["median"]
        for c in ALL:
            if c not in sides:
                continue
            s = sides[c]
            ops, p50, p95 = s["ops_per_s"], s["p50_us"], s["p95_us"]
            lines.append(
                f"| {case} | {c} | {ops['median']:.0f} [{ops['min']:.0f}–{ops['max']:.0f}] | "
                f"{p50['median']:.0f} | {p95['median']:.0f} | {p50['median'] / base:.3f} |"
            )
    lines += ["", "## Connect (open, SELECT 1, close)", ""]
    lines += ["| contender | p50 ms | p95 ms |", "|---|---:|---:|"]
    for c in ALL:
        s = result["latency"]["connect"][c]
        lines.append(f"| {c} | {s['p50_ms']['median']:.1f} | {s['p95_ms']['median']:.1f} |")
    lines += [
        "",
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
        for c in ASYNC:
            s = sides[c]
            lines.append(
                f"| {case} | {c} | {s['p50'] * 1000:.0f} ms | {s['p95'] * 1000:.0f} ms "
                f"| {s['max'] * 1000:.0f} ms | {s['unrecovered']} | {s['errors']} |"
            )
    write("peers", result, lines)


def peer_version() -> str:
    code = "import importlib.metadata as m; print(m.version('aws_advanced_python_wrapper'))"
    out = subprocess.run([str(PEERS_PYTHON), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


async def demo() -> None:
    """One crash failover, 4 connections per contender: a timeline picture and its CSV."""
    rows = []
    for contender in ASYNC:
        outcome = await downtime_run(contender, 4, "crash")
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
    for y, contender in enumerate(ASYNC):
        mine = [r for r in rows if r[0] == contender and r[3] >= 0 and -2 <= r[2] <= WINDOW]
        ok = [r[2] for r in mine if r[3] == 1]
        bad = [r[2] for r in mine if r[3] == 0]
        ax.scatter(ok, [y] * len(ok), marker="|", s=60, color="tab:green", linewidths=0.8)
        ax.scatter(bad, [y] * len(bad), marker="x", s=30, color="tab:red", linewidths=0.8)
        promoted = next(r[2] for r in rows if r[0] == contender and r[3] == -1)
        ax.plot([promoted, promoted], [y - 0.4, y + 0.4], color="tab:blue", linewidth=1.5)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(ASYNC)), ASYNC)
    ax.set_xlabel("seconds after the writer died (blue: replica promoted; green: write ok; red: error)")
    ax.set_title("Writes through an Aurora crash failover (4 connections per contender, simulated cluster)")
    ax.set_xlim(-2, 12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--downtime-runs", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--reuse-latency", action="store_true", help="downtime only; latency as last run")
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing: run `make bench` (it creates benchmarks/.venv-peers)")
    if args.demo:
        await demo()
        return
    raw = RESULTS / "peers_latency_raw.json"
    if args.reuse_latency:  # only the downtime part again, with the latency rounds of the last run
        latency = json.loads(raw.read_text())
    else:
        async with AuroraSimulator(instances=3, max_connections=300) as sim:
            latency = await latency_rounds(sim, args.rounds)
        RESULTS.mkdir(exist_ok=True)
        raw.write_text(json.dumps(latency))
    downtime = await downtime_rounds(args.downtime_runs, args.sizes)
    report(latency, downtime, args)


if __name__ == "__main__":
    asyncio.run(main())
