"""A stateful, model-based test: many identities and API habits on one simulated cluster, under faults,
with invariants checked against the database after every step (``world.py`` lists them).

On one simulated cluster per engine, a seeded generator (``model.py``) opens connections, raw
connections and (PostgreSQL) pools as different identities: several database users with their own
passwords, Secrets Manager secrets served by moto, TLS on and off, different ``search_path`` and
``application_name`` (MySQL: ``autocommit`` and ``sql_mode``); it runs units of work in transaction
blocks with and without retries inside and around them, reads, cursors, read/write splitting, closes,
and injects faults (crash failover, switchover, a black-holed writer, resets, reader reboots and
crashes, password rotation, a connection closed in the middle of its failover).

Why a seeded generator rather than hypothesis' ``RuleBasedStateMachine``: the servers run in real
time (failover, detection and DNS lag take their own time), so the same steps do not always interleave
the same way; hypothesis would spend its budget shrinking failures it cannot reproduce (``Flaky``), and
each example costs seconds of real servers. A seed gives the same steps; a failing run prints them in
a form that ``STATEFUL_STEPS`` replays as is (cut it down by hand to a minimal reproduction), and
``STATEFUL_SECONDS`` bounds a run in time as ``tests/chaos`` does.

    STATEFUL_SECONDS=120 STATEFUL_SEED=42 .venv/bin/pytest tests/stateful -k stateful_ -s -p no:cacheprovider
    STATEFUL_STEPS='open c1 alpha_plain; open c2 alpha_tls; fault failover' \\
        .venv/bin/pytest tests/stateful -k stateful_postgresql -s
    STATEFUL_KEEP_GOING=1 ...   # do not stop at the first step that breaks an invariant

A run stops at the first step that breaks an invariant (the report's ``replay`` line holds the steps
up to it) and fails with the seed, the steps, their outcomes and the violations. ``make test`` runs
``STATEFUL_SECONDS`` (15 s by default) of a random seed per engine, plus ``scenarios.py``: the smallest
reproductions found so far, replayed on one cluster per engine, so that a fixed bug stays fixed whatever
the seed of the day draws.

MySQL has no pool and the simulator offers no TLS for it: those steps are skipped (pools) or absent
(TLS identities, the background-TLS invariant) there.
"""

from __future__ import annotations

import os
import random
import time
import uuid

import pytest

from aurora_async.testing import AuroraSimulator

from .model import Engine, Generator, Step, parse_steps
from .scenarios import SCENARIOS
from .world import World

SECONDS = float(os.environ.get("STATEFUL_SECONDS") or 15)
SEED = int(os.environ.get("STATEFUL_SEED") or random.SystemRandom().randrange(1_000_000))
STEPS = os.environ.get("STATEFUL_STEPS")
KEEP_GOING = os.environ.get("STATEFUL_KEEP_GOING") == "1"

pytestmark = [pytest.mark.stateful, pytest.mark.slow]


def report(world: World, engine: Engine, origin: str, elapsed: float) -> str:
    lines = [
        f"stateful {engine} {origin}: {len(world.history)} steps in {elapsed:.1f} s, units "
        f"{unit_counts(world)}, {len(world.violations)} violation(s)",
    ]
    if world.violations:
        last = max(v.step for v in world.violations)
        steps = "; ".join(str(s) for n, s, _ in world.history if n <= last)
        command = f".venv/bin/pytest tests/stateful -k stateful_{engine} -s"
        lines.append(f"  replay: STATEFUL_STEPS='{steps}' {command}")
    lines.append("  steps:")
    lines += [f"    {n:3d} {s} -> {outcome}" for n, s, outcome in world.history]
    if world.violations:
        lines.append("  violations:")
        lines += [f"    {v}" for v in world.violations]
    if world.traces:
        lines.append("  where the undocumented errors came from:")
        lines += [f"    {line}" for trace in world.traces for line in trace.splitlines()]
    return "\n".join(lines)


def unit_counts(world: World) -> str:
    states: dict[str, int] = {}
    for expect in world.ledger.values():
        states[expect.state] = states.get(expect.state, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none"


async def play(
    sim: AuroraSimulator,
    engine: Engine,
    moto_endpoint: str,
    *,
    steps: list[Step] | None,
    origin: str,
    keep_going: bool = KEEP_GOING,
) -> tuple[World, str]:
    """Run the given steps, or steps drawn from ``SEED`` for ``SECONDS``; then close everything (unless
    a violation stopped the run) and report."""
    world = World(sim, engine, moto_endpoint, uuid.uuid4().hex[:8])
    generator = Generator(random.Random(SEED), world.model)
    started = time.monotonic()
    try:
        await world.setup()
        while True:
            if steps is not None:
                if not steps:
                    break
                step = steps.pop(0)
            elif time.monotonic() - started > SECONDS:
                break
            else:
                step = generator.next()
            await world.step(step)
            if world.violations and not keep_going:
                break
        ended = world.history and world.history[-1][1].kind == "close_all"
        if (not world.violations or keep_going) and not ended:
            await world.step(Step("close_all"))
    finally:
        text = report(world, engine, origin, time.monotonic() - started)
        print("\n" + text)
        await world.teardown()
    return world, text


async def run(sim: AuroraSimulator, engine: Engine, moto_endpoint: str) -> None:
    replay = parse_steps(STEPS) if STEPS else None
    origin = "replayed steps" if replay is not None else f"seed={SEED} seconds={SECONDS:g}"
    world, text = await play(sim, engine, moto_endpoint, steps=replay, origin=origin)
    if world.violations:
        pytest.fail(text, pytrace=False)


async def run_scenarios(sim: AuroraSimulator, engine: Engine, moto_endpoint: str) -> None:
    failed = []
    for name, text in SCENARIOS[engine].items():
        world, shown = await play(
            sim, engine, moto_endpoint, steps=parse_steps(text), origin=f"scenario {name}"
        )
        if world.violations:
            failed.append(f"{name}:\n{shown}")
    if failed:
        pytest.fail(
            f"{len(failed)} of {len(SCENARIOS[engine])} scenarios broke invariants\n" + "\n".join(failed),
            pytrace=False,
        )


@pytest.mark.timeout(SECONDS + 400)
@pytest.mark.aurora_simulator(instances=3, tls=True, dns_delay=0.5)
async def test_stateful_postgresql(aurora_postgres: AuroraSimulator, moto_endpoint: str) -> None:
    await run(aurora_postgres, "postgresql", moto_endpoint)


@pytest.mark.timeout(SECONDS + 400)
@pytest.mark.aurora_simulator(instances=3, dns_delay=0.5)
async def test_stateful_mysql(aurora_mysql: AuroraSimulator, moto_endpoint: str) -> None:
    await run(aurora_mysql, "mysql", moto_endpoint)


@pytest.mark.timeout(600)
@pytest.mark.aurora_simulator(instances=3, tls=True, dns_delay=0.5)
async def test_scenarios_postgresql(aurora_postgres: AuroraSimulator, moto_endpoint: str) -> None:
    await run_scenarios(aurora_postgres, "postgresql", moto_endpoint)


@pytest.mark.timeout(600)
@pytest.mark.aurora_simulator(instances=3, dns_delay=0.5)
async def test_scenarios_mysql(aurora_mysql: AuroraSimulator, moto_endpoint: str) -> None:
    await run_scenarios(aurora_mysql, "mysql", moto_endpoint)
