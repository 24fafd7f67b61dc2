"""What every benchmark here shares: statistics, the machine and commit it ran on, result files."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiomysql
import asyncpg

from aurora_async._retry import RETRYABLE

RESULTS = Path(__file__).resolve().parent / "results"


def summary(values: list[float]) -> dict[str, float]:
    """Median, spread and count of ``values``."""
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_stats(values: list[float]) -> dict[str, float]:
    """p50, p95, max and count of ``values``."""
    return {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": max(values),
        "n": len(values),
    }


Work = Callable[[Any], Awaitable[Any]]


async def batch(conns: Sequence[Any], work: Work, ops: int) -> float:
    """Seconds per operation: ``ops`` operations spread over ``conns``, all connections at once."""
    per_conn = max(1, ops // len(conns))

    async def run(conn: Any) -> None:
        for _ in range(per_conn):
            await work(conn)

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    return (time.perf_counter() - started) / (per_conn * len(conns))


async def ab_rounds(
    sides: Mapping[str, Sequence[Any]],
    workloads: Mapping[str, Work],
    concurrency: Iterable[int],
    rounds: int,
    ops: int,
) -> dict[str, dict[str, list[float]]]:
    """The A/B overhead measurement: every workload at every concurrency on each side's first N
    connections, the two sides back to back, alternating which goes first; after a warm-up.
    ``samples[f"{workload}, {n} conn"][side]`` holds seconds per operation, one per round."""
    for work in workloads.values():
        for conns in sides.values():
            await batch(conns, work, ops // 4)
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_no in range(rounds):
        for name, work in workloads.items():
            for n in concurrency:
                order = list(sides.items())
                if round_no % 2:
                    order.reverse()
                for side, conns in order:
                    samples[f"{name}, {n} conn"][side].append(await batch(conns[:n], work, ops))
        print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
    return samples


async def firsts_after_failover(
    sim: Any, conns: list[Any], write: Callable[[Any, int], Awaitable[Any]], pause: float
) -> tuple[Any, dict[int, float]]:
    """Workers, one per connection, call ``write(conn, k)`` every ``pause`` seconds (at once again
    after ``FailoverSuccessError`` / ``TransactionResolutionUnknownError``) while the writer fails over
    after a second of steady state. Returns the failover report and, per worker, when it first wrote
    on another instance (waiting up to 30 s for everyone)."""
    old = sim.writer_id
    firsts: dict[int, float] = {}
    stop, everyone = asyncio.Event(), asyncio.Event()

    async def worker(conn: Any, k: int) -> None:
        while not stop.is_set():
            try:
                await write(conn, k)
            except RETRYABLE:
                continue
            if conn.instance.instance_id != old and k not in firsts:
                firsts[k] = time.monotonic()
                if len(firsts) == len(conns):
                    everyone.set()
            await asyncio.sleep(pause)

    tasks = [asyncio.create_task(worker(c, k)) for k, c in enumerate(conns)]
    try:
        await asyncio.sleep(1.0)  # steady state before the failure
        report = await sim.failover()
        try:
            await asyncio.wait_for(everyone.wait(), 30)
        except TimeoutError:
            pass  # the caller sees who is missing
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return report, firsts


def cluster_keywords(sim: Any) -> dict[str, Any]:
    """``aurora_async.connect`` keywords for a simulated PostgreSQL cluster's writer endpoint, by host
    name (for options that take the host apart: IAM, Secrets Manager)."""
    return {
        "host": sim.cluster_endpoint.rsplit(":", 1)[0],
        "port": sim.port,
        "database": "postgres",
        "cluster_instance_host_pattern": sim.instance_host_pattern,
    }


def machine() -> dict[str, str]:
    pg = subprocess.run(
        ["sh", "-c", "ls -d /usr/lib/postgresql/*/bin | tail -1"], capture_output=True, text=True, check=False
    ).stdout.strip()
    version = subprocess.run([f"{pg}/postgres", "--version"], capture_output=True, text=True, check=False)
    try:
        mariadb = subprocess.run(
            ["mariadbd", "--version"], capture_output=True, text=True, check=False, env=_SBIN_PATH
        ).stdout
    except OSError:  # not installed: a PostgreSQL-only machine
        mariadb = ""
    return {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "postgres": version.stdout.strip(),
        "asyncpg": asyncpg.__version__,
        # "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for ...": 10.11.19
        "mariadb": next((w.split("-MariaDB")[0] for w in mariadb.split() if "MariaDB" in w), ""),
        "aiomysql": aiomysql.__version__,
    }


_SBIN_PATH = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin"}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "aurora_async"], capture_output=True, text=True, check=False
    )
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


def command() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def header(title: str, result: dict[str, Any]) -> list[str]:
    """The first lines of a results page: what ran, where, at which commit."""
    info = result["machine"]
    return [
        f"# {title}",
        "",
        f"`{result['command']}` at commit `{result['commit']}`; {info['cpus']} CPUs, {info['postgres']}, "
        f"Python {info['python']}, asyncpg {info['asyncpg']}"
        + (f", MariaDB {info['mariadb']}, aiomysql {info['aiomysql']}" if info.get("mariadb") else "")
        + ".",
        "",
    ]


def ratio_table(
    result: dict[str, Any],
    samples: dict[str, dict[str, list[float]]],
    target: float | None,
    base: str = "asyncpg",
) -> list[str]:
    """The A/B table of an interleaved aurora_async vs ``base`` (the plain driver) benchmark:
    ``samples[workload][side]`` holds seconds per operation per round; fills
    ``result["seconds_per_operation"]``."""
    lines = [f"| workload | {base} µs/op | aurora_async µs/op | ratio |", "|---|---:|---:|---:|"]

    def cell(stats: dict[str, float]) -> str:
        return f"{stats['median'] * 1e6:.1f} ({stats['min'] * 1e6:.1f}-{stats['max'] * 1e6:.1f})"

    result["seconds_per_operation"] = {}
    for workload, sides in samples.items():
        ratios = [ours / plain for plain, ours in zip(sides[base], sides["aurora_async"], strict=True)]
        entry = {side: summary(values) for side, values in sides.items()} | {"ratio": summary(ratios)}
        result["seconds_per_operation"][workload] = entry
        lines.append(
            f"| {workload} | {cell(entry[base])} | {cell(entry['aurora_async'])} | "
            f"{entry['ratio']['median']:.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |"
        )
    overall = statistics.median(e["ratio"]["median"] for e in result["seconds_per_operation"].values())
    goal = "" if target is None else f" (target: at most {target:.2f})"
    return [*lines, "", f"Median ratio over the workloads: {overall:.3f}{goal}."]


def write(name: str, result: dict[str, Any], lines: list[str]) -> None:
    """``results/<name>.json`` and ``results/<name>.md``; the page is printed too."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
