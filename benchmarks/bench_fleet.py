"""A fleet through a crash failover: K processes with N connections each, every one of them reconnecting
at once, against the new writer.

    .venv/bin/python benchmarks/bench_fleet.py [--processes 8] [--connections 100] [--runs 1]
        [--contenders asyncpg aws_wrapper_aio aurora_async]

Each contender gets a fresh simulated Aurora PostgreSQL cluster (3 instances, the writer dead for a
second before a replica is promoted) and K processes of ``benchmarks/peers/contender.py`` (the
``downtime`` workload of ``bench_peers.py``: N connections per process, each writing a row every 50 ms
and recovering as that contender's users do), logging in as a user with a password (SCRAM-SHA-256, as on
Aurora; IAM tokens cost the server a similar check). Contenders run one after another, in a new order
each run. Per contender:

- **recovery**: from the promotion to each connection's first write after the fault (p50, p95, and
  the last one: when the whole fleet writes again), and connections never recovered in 15 s;
- **new-writer connection attempts**: connections the new writer's endpoints accepted (its instance
  endpoint and the cluster endpoint, which follows it after the DNS lag) from the promotion to the
  fleet's recovery, and their peak rate over 100 ms bins;
- **new-writer CPU**: CPU seconds the new writer's PostgreSQL processes used from just before the fault
  to the end of the window (SCRAM logins, the writes, the promotion itself);
- **background sessions**: server sessions per process beyond its N application connections, counted
  on every instance before the fault.

The plain driver (asyncpg through the cluster endpoint, reconnecting every 50 ms as a simple loop does)
is the baseline; the incumbent runs in ``benchmarks/.venv-peers`` (``make bench`` creates it). Writes
``benchmarks/results/fleet.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from _common import command, commit, header, latency_stats, machine, write
from bench_peers import (
    DELAYS,
    PEERS_PYTHON,
    POSTGRESQL,
    ContenderFailed,
    base_spec,
    contender_process,
    create_table,
    finish,
    wait_ready,
)

from aurora_async.testing import AuroraSimulator

USER, PASSWORD = "fleet", "fleet0password"  # letters and digits: it travels in DSNs as is
PAUSE = 0.05
WINDOW = 15.0  # seconds observed after the fault
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds used: its own, and its children's that it has reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / TICKS


def server_cpu(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL server: the postmaster, its live children, and those it reaped."""
    total = _cpu_of(postmaster)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent, seconds = _cpu_of(int(entry.name))
            if parent == postmaster:
                total += seconds
    return total


async def _value(sim: AuroraSimulator, instance: str, sql: str) -> Any:
    conn = await asyncpg.connect(sim.dsn(instance))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def postmaster_of(sim: AuroraSimulator, instance: str) -> int:
    sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
    return _cpu_of(int(await _value(sim, instance, sql)))[0]


async def client_sessions(sim: AuroraSimulator) -> int:
    """Client sessions on every instance, the asking ones left out."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    return sum([int(await _value(sim, i, sql)) - 1 for i in sim.instance_ids])


async def accepted(sim: AuroraSimulator) -> dict[str, int]:
    status = await sim.proxy_status()
    return {name: int(entry["accepted"]) for name, entry in status["listeners"].items()}


async def fleet_run(contender: str, processes: int, connections: int) -> dict[str, Any]:
    fleet = processes * connections
    async with POSTGRESQL.simulator(delays=DELAYS, max_connections=fleet + 300) as sim:
        await create_table(sim, POSTGRESQL, "beats", "worker int")
        await sim.set_password(USER, PASSWORD)
        admin = await asyncpg.connect(sim.dsn("cluster"))
        await admin.execute(f"GRANT ALL ON beats, beats_id_seq TO {USER}")
        await admin.close()
        spec = base_spec(sim, POSTGRESQL, contender, "downtime") | {
            "connections": connections,
            "pause": PAUSE,
            "user": USER,
            "password": PASSWORD,
            "timeout": 10.0,
            "command_timeout": 10.0,
        }
        async with contextlib.AsyncExitStack() as stack:
            procs = [await stack.enter_async_context(contender_process(spec)) for _ in range(processes)]
            await asyncio.gather(*(wait_ready(p, spec) for p in procs))
            background = (await client_sessions(sim) - fleet) / processes
            replicas = {r: await postmaster_of(sim, r) for r in sim.reader_ids}
            await asyncio.sleep(1.0)  # steady state before the fault (a benchmark's pacing)
            samples: list[tuple[float, dict[str, int]]] = [(time.monotonic(), await accepted(sim))]
            cpu_samples: list[tuple[float, dict[str, float]]] = []
            stop_sampling = asyncio.Event()

            async def sample() -> None:
                tick = 0
                while not stop_sampling.is_set():
                    samples.append((time.monotonic(), await accepted(sim)))
                    if tick % 2 == 0:  # every 0.2 s: reading /proc costs a few ms
                        cpu = {r: server_cpu(pid) for r, pid in replicas.items()}
                        cpu_samples.append((time.monotonic(), cpu))
                    tick += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop_sampling.wait(), 0.1)

            sampler = asyncio.create_task(sample())
            writer = sim.writer_id
            fault_at = time.monotonic()
            report = await sim.failover()
            steps = {e.step: e.at for e in report.events}
            lost, promoted = steps["writer lost"], steps["replica promoted"]
            await asyncio.sleep(max(0.0, fault_at + WINDOW - time.monotonic()))  # the observation window
            stop_sampling.set()
            await sampler
            new_writer = sim.writer_id
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"stop\n")
                await proc.stdin.drain()
            results = [await finish(proc, spec, 60) for proc in procs]
    firsts: list[float] = []
    unrecovered = 0
    for result in results:
        for worker in range(connections):
            after = [t for t, w, ok in result["events"] if w == worker and ok and t > lost]
            if after:
                firsts.append(min(after) - promoted)
            else:
                unrecovered += 1
    recovered_at = promoted + max(firsts) if firsts else promoted + WINDOW
    # the new writer's CPU from just before the fault until the sample after the fleet recovered
    before = [c for t, c in cpu_samples if t <= fault_at]
    after = [c for t, c in cpu_samples if t >= recovered_at]
    start = (before[-1] if before else cpu_samples[0][1])[new_writer]
    cpu = (after[0] if after else cpu_samples[-1][1])[new_writer] - start
    listeners = (new_writer, "cluster")
    window = [(t, counts) for t, counts in samples if promoted <= t <= recovered_at + 0.1]
    attempts, peak = 0, 0.0
    if len(window) >= 2:
        first, last = window[0][1], window[-1][1]
        attempts = sum(last.get(n, 0) - first.get(n, 0) for n in listeners)
        for (t0, a), (t1, b) in zip(window, window[1:], strict=False):
            step = sum(b.get(n, 0) - a.get(n, 0) for n in listeners)
            peak = max(peak, step / max(t1 - t0, 1e-3))
    del writer
    return {
        "recovery": latency_stats(firsts) if firsts else None,
        "unrecovered": unrecovered,
        "attempts": attempts,
        "peak_attempts_per_s": peak,
        "new_writer_cpu_s": cpu,
        "background_sessions_per_process": background,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--connections", type=int, default=100, help="per process")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--contenders", nargs="+", default=["asyncpg", "aws_wrapper_aio", "aurora_async"])
    args = parser.parse_args()
    if "aws_wrapper_aio" in args.contenders and not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing: run `make bench` (it creates benchmarks/.venv-peers)")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in args.contenders}
    for run in range(args.runs):
        order = list(args.contenders)
        random.shuffle(order)
        for contender in order:
            try:
                outcome = await fleet_run(contender, args.processes, args.connections)
            except ContenderFailed as exc:
                outcome = {"failed": str(exc)}
            except SystemExit as exc:  # a contender process gave up (its message)
                outcome = {"failed": str(exc)}
            runs[contender].append(outcome)
            print(f"run {run + 1}/{args.runs} {contender}: {outcome}", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "fleet",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "processes": args.processes,
        "connections_per_process": args.connections,
        "runs": runs,
    }
    fleet = args.processes * args.connections
    lines = [
        *header(
            f"A fleet through a crash failover: {args.processes} processes × {args.connections} connections",
            result,
        ),
        f"{fleet} connections in all, logging in with SCRAM; the writer dead 1 s before a replica is "
        f"promoted; {args.runs} run(s) per contender, contenders in a new order each run. Recovery: from "
        "the promotion to each connection's first write (the last: when the whole fleet writes again). "
        "Attempts: connections the new writer's instance and cluster endpoints accepted from the "
        "promotion until the fleet recovered. CPU: the new writer's PostgreSQL processes from the fault "
        "until the fleet recovered (logins, the writes, its promotion).",
        "",
        "| contender | recovery p50 / p95 / last | never recovered | new-writer connects (peak /s) "
        "| new-writer CPU s | background sessions per process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for contender, outcomes in runs.items():
        for outcome in outcomes:
            if "failed" in outcome:
                lines.append(f"| {contender} | failed: {outcome['failed']} | | | | |")
                continue
            rec = outcome["recovery"]
            cell = (
                "-"
                if rec is None
                else f"{rec['p50'] * 1e3:.0f} / {rec['p95'] * 1e3:.0f} / {rec['max'] * 1e3:.0f} ms"
            )
            lines.append(
                f"| {contender} | {cell} | {outcome['unrecovered']} | {outcome['attempts']} "
                f"({outcome['peak_attempts_per_s']:.0f}/s) | {outcome['new_writer_cpu_s']:.1f} | "
                f"{outcome['background_sessions_per_process']:.1f} |"
            )
    write("fleet", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
