"""Event-loop stalls of connect-query-close with Secrets Manager credentials, in fresh processes.

    .venv/bin/python benchmarks/bench_auth_stall.py [--rounds 6] [--connects 20] [--compare-with DIR]

Each round starts one fresh Python process per side (so the first connect pays what a new process
pays: imports, the AWS session, botocore's service model) that opens, queries and closes
``--connects`` connections one after another with the ``aws_secrets_manager`` plugin and no
``aws_session`` of its own, while a ticker task measures how late the event loop wakes it (a stall).
``--compare-with`` names a checkout of another commit of aurora_async, run as the other side,
interleaved round by round (A/B, then B/A). Secrets come from moto's server on loopback; nothing
reaches AWS. Writes ``benchmarks/results/auth_stall.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import command, commit, header, machine, summary, write

# (aurora_async.testing imports neither aioboto3 nor botocore: the child measures their import)
from aurora_async.testing import DUMMY_AWS_ENV

USER, PASSWORD, SECRET = "stall_user", "stall-password-1", "bench/stall"
HERE = Path(__file__).resolve()


async def child(endpoint: str, host: str, port: int, pattern: str, connects: int) -> dict[str, Any]:
    """In a fresh process: the loop's worst lateness during each connect-query-close."""
    worst = 0.0
    tick = 0.001

    async def ticker() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(tick)
            worst = max(worst, loop.time() - before - tick)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # the ticker runs
    import aurora_async  # noqa: PLC0415 - imported here, as an application would, while the loop runs

    stalls, seconds = [], []
    try:
        for _ in range(connects):
            worst = 0.0
            started = time.perf_counter()
            conn = await aurora_async.connect(
                host=host,
                port=port,
                database="postgres",
                plugins=("initial_connection", "failover", "aws_secrets_manager"),
                secrets_manager_secret_id=SECRET,
                secrets_manager_region="us-east-1",
                secrets_manager_endpoint=endpoint,
                cluster_instance_host_pattern=pattern,
            )
            await conn.fetchval("SELECT 1")
            await conn.close()
            seconds.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)  # let a stall that ends the connect show
            stalls.append(worst)
    finally:
        ticking.cancel()
    return {"stalls": stalls, "seconds": seconds}


async def run_side(tree: Path, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE), "--child", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the side at {tree} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument("--compare-with", type=Path, help="a checkout of another commit (the B side)")
    parser.add_argument("--child", nargs=4, metavar=("ENDPOINT", "HOST", "PORT", "PATTERN"))
    args = parser.parse_args()
    os.environ.update(DUMMY_AWS_ENV)
    if args.child:
        endpoint, host, port, pattern = args.child
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        result = await child(endpoint, host, int(port), pattern, args.connects)
        print(json.dumps(result))
        return
    import aioboto3  # noqa: PLC0415 - the parent only: a child imports it while its ticker runs

    from aurora_async.testing import AuroraSimulator, MotoServer  # noqa: PLC0415

    sides = {"this tree": HERE.parent.parent}
    if args.compare_with is not None:
        sides[f"{args.compare_with.name}"] = args.compare_with.resolve()
    async with MotoServer() as endpoint, AuroraSimulator(instances=2) as sim:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        await sim.set_password(USER, PASSWORD)
        async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as client:
            await client.create_secret(
                Name=SECRET, SecretString=json.dumps({"username": USER, "password": PASSWORD})
            )
        host = sim.cluster_endpoint.rsplit(":", 1)[0]
        child_args = [
            endpoint,
            host,
            str(sim.port),
            sim.instance_host_pattern,
            "--connects",
            str(args.connects),
        ]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for round_no in range(args.rounds):
            order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
            for name in order:
                runs[name].append(await run_side(sides[name], child_args))
    report(runs, args.rounds, args.connects)


def report(runs: dict[str, list[dict[str, Any]]], rounds: int, connects: int) -> None:
    result: dict[str, Any] = {
        "benchmark": "auth_stall",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "rounds": rounds,
        "connects": connects,
        "sides": {},
    }
    lines = header("Event-loop stalls of connect-query-close with Secrets Manager credentials", result)
    lines += [
        f"{rounds} fresh processes per side, interleaved; each opens, queries and closes {connects} "
        "connections in a row with the `aws_secrets_manager` plugin and no `aws_session` of its own. "
        "A stall is how late a 1 ms ticker woke during one connect-query-close.",
        "",
        "| side | first connect: stall ms | first connect: ms | later connects: stall ms (median, max) "
        "| later connects: ms (median) |",
        "|---|---|---|---|---|",
    ]
    for name, side in runs.items():
        first_stall = summary([r["stalls"][0] * 1000 for r in side])
        first_time = summary([r["seconds"][0] * 1000 for r in side])
        later_stall = summary([s * 1000 for r in side for s in r["stalls"][1:]])
        later_time = summary([s * 1000 for r in side for s in r["seconds"][1:]])
        result["sides"][name] = {
            "first_stall_ms": first_stall,
            "first_ms": first_time,
            "later_stall_ms": later_stall,
            "later_ms": later_time,
        }
        lines.append(
            f"| {name} | {first_stall['median']:.0f} ({first_stall['min']:.0f}-{first_stall['max']:.0f}) "
            f"| {first_time['median']:.0f} | {later_stall['median']:.1f}, {later_stall['max']:.1f} "
            f"| {later_time['median']:.1f} |"
        )
    write("auth_stall", result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
