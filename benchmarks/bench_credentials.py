"""Connect latency with IAM tokens and Secrets Manager secrets served from the cache, and AWS calls.

    .venv/bin/python benchmarks/bench_credentials.py [--rounds 10] [--connects 100]

Four ways to open a connection to the writer of a simulated cluster, as a user whose password is
checked (SCRAM), interleaved round by round: raw ``asyncpg.connect`` with a static password;
``aurora_async.connect`` with the same static password; with the ``iam`` plugin (a token from aioboto3,
cached); with the ``aws_secrets_manager`` plugin (a secret in moto's server on loopback, cached).
All aurora_async variants use the same other plugins, so their difference is what credentials cost on
a cache hit. AWS calls are counted over every connect of the run. Writes
``benchmarks/results/credentials.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
import asyncpg
from _common import cluster_keywords, command, commit, header, machine, summary, write

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, MotoServer, RehearsalSession

USER, PASSWORD = "bench_user", "static-password-for-bench"
BASE_PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--connects", type=int, default=100, help="sequential connects per variant and round")
    args = parser.parse_args()
    os.environ.update(DUMMY_AWS_ENV)
    async with MotoServer() as endpoint, AuroraSimulator(instances=2) as sim:
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # nothing may reach AWS
        result = await measure(sim, endpoint, args.rounds, args.connects)
    report(result, args.rounds, args.connects)


async def measure(sim: AuroraSimulator, endpoint: str, rounds: int, connects: int) -> dict[str, Any]:
    common: dict[str, Any] = cluster_keywords(sim)
    host = common["host"]
    async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as client:
        await client.create_secret(
            Name="bench", SecretString=json.dumps({"username": USER, "password": PASSWORD})
        )
    token_session = RehearsalSession(sim, "bench_iam")  # each token becomes bench_iam's password
    secret_session = RehearsalSession()
    await sim.set_password(USER, PASSWORD)
    keep: list[Any] = []  # one open connection per variant keeps its cluster (and cache) alive
    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "asyncpg, static password": lambda: asyncpg.connect(
            host=host, port=sim.port, user=USER, password=PASSWORD, database="postgres"
        ),
        "aurora_async, static password": lambda: aurora_async.connect(
            user=USER, password=PASSWORD, plugins=BASE_PLUGINS, **common
        ),
        "aurora_async, IAM token (cached)": lambda: aurora_async.connect(
            user="bench_iam",
            plugins=(*BASE_PLUGINS, "iam"),
            iam_region="us-east-1",
            iam_host="db.bench.internal",
            iam_allow_plaintext=True,
            aws_session=token_session,
            **common,
        ),
        "aurora_async, secret (cached)": lambda: aurora_async.connect(
            plugins=(*BASE_PLUGINS, "aws_secrets_manager"),
            secrets_manager_secret_id="bench",
            secrets_manager_region="us-east-1",
            secrets_manager_endpoint=endpoint,
            aws_session=secret_session,
            **common,
        ),
    }
    for open_one in variants.values():
        keep.append(await open_one())
    hits = await cache_hits(keep[2:], host, sim.port)
    samples: dict[str, list[float]] = defaultdict(list)
    total = 0
    try:
        for round_no in range(rounds):
            names = list(variants)
            if round_no % 2:
                names.reverse()
            for name in names:
                started = time.perf_counter()
                for _ in range(connects):
                    conn = await variants[name]()
                    await conn.close()
                samples[name].append((time.perf_counter() - started) / connects)
            total += connects
            print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
    finally:
        for conn in keep:
            await conn.close()
    return {
        "cache_hit_seconds": hits,
        "samples": samples,
        "connects_per_variant": total + 1,
        "aws_calls": {
            "generate_db_auth_token": token_session.calls["generate_db_auth_token"],
            "get_secret_value": secret_session.calls["get_secret_value"],
        },
    }


async def cache_hits(conns: list[Any], host: str, port: int, calls: int = 20000) -> dict[str, float]:
    """Seconds per ``Authenticator.credentials()`` call answered from the cache, per plugin: what a
    connect pays for its credentials once they are cached."""
    from aurora_async._registry import registry  # noqa: PLC0415 - a look inside, for this measurement

    hits: dict[str, float] = {}
    auth = registry.authenticator()
    for conn in conns:
        source = conn._identity.credentials
        assert source is not None
        started = time.perf_counter()
        for _ in range(calls):
            _, cached = await auth.credentials(source, host, port)
        hits[source.kind] = (time.perf_counter() - started) / calls
        assert cached, "the benchmark must measure cache hits"
    assert len(hits) == len(conns)
    return hits


def report(measured: dict[str, Any], rounds: int, connects: int) -> None:
    samples: dict[str, list[float]] = measured["samples"]
    base = samples["aurora_async, static password"]
    result: dict[str, Any] = {
        "benchmark": "credentials",
        "command": command(),
        "commit": commit(),
        "machine": machine(),
        "seconds_per_connect": {name: summary(values) for name, values in samples.items()},
        "aws_calls": measured["aws_calls"],
        "cache_hit_seconds": measured["cache_hit_seconds"],
        "connects_per_variant": measured["connects_per_variant"],
    }
    lines = [
        *header("Credentials: connect latency on a cache hit, and AWS calls", result),
        f"{rounds} interleaved rounds of {connects} sequential connect + close per variant; per connect: "
        "median over the rounds (min-max); added: median of the per-round differences to aurora_async "
        "with a static password.",
        "",
        "| variant | ms per connect | added by credentials |",
        "|---|---:|---:|",
    ]
    for name, values in samples.items():
        s = summary(values)
        added = "-"
        if name.endswith("(cached)"):
            diffs = sorted(v - b for v, b in zip(values, base, strict=True))
            added = (
                f"{diffs[len(diffs) // 2] * 1000:+.2f} ms ({diffs[0] * 1000:+.2f} to {diffs[-1] * 1000:+.2f})"
            )
        lines.append(
            f"| {name} | {s['median'] * 1000:.2f} ({s['min'] * 1000:.2f}-{s['max'] * 1000:.2f}) | {added} |"
        )
    calls = measured["aws_calls"]
    hits = measured["cache_hit_seconds"]
    lines += [
        "",
        "A cache hit on its own (20,000 `Authenticator.credentials()` calls): "
        + ", ".join(f"{kind} {seconds * 1e6:.1f} µs" for kind, seconds in hits.items())
        + ". The connect-time differences above are this machine's noise around that.",
        "",
        f"AWS calls over {measured['connects_per_variant']} connects each: generate_db_auth_token "
        f"{calls['generate_db_auth_token']}, GetSecretValue {calls['get_secret_value']} (target: 1).",
    ]
    write("credentials", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
