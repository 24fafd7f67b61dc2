"""A randomized fault schedule under a write load, with invariants checked afterwards.

``make test`` runs a short form (``CHAOS_SECONDS`` defaults to 12 s of faults per engine); ``make
chaos`` a longer one (``DURATION``, ``SEED``, ``WORKERS``). A failing run prints its seed: ``make chaos
SEED=...`` replays the same fault schedule (the interleaving of the workers, being real I/O, differs run
to run).

It runs on both engines (PostgreSQL through the asyncpg facade, MySQL through the aiomysql facade, each
on its own simulated cluster). K workers write through one aurora_async pool: each transaction inserts
an event with a unique id and bumps its worker's counter, re-run by ``attempts_of`` after a failover
error. A scheduler drawn from the seed injects crash failovers, planned switchovers, a black-holed
writer (failed over later), reader reboots and crashes, latency spikes and connection resets, with a
cluster endpoint DNS lag drawn anew for each failover. At the end, against the database:

- every transaction the application saw commit is stored exactly once (``events.id`` has no unique
  key, so a transaction applied twice would show);
- a transaction that gave up with an error, and was never reported unknown, is absent;
- one reported ``TransactionResolutionUnknownError`` is present 0 or 1 times, never 2: the worker
  resolves it by reading back before re-running it, as an application should;
- each worker's counter equals its stored events (no increment lost or doubled);
- no unit of work outlived its retry deadline plus one failover, and every worker commits again after
  the last fault;
- after shutdown no cluster, task, socket or server session of ours remains.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually, sockets_to
from tests.integration._engine_ops import EngineOps, engine_ops

SECONDS = float(os.environ.get("CHAOS_SECONDS") or 12)  # of faults, per engine
SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
WORKERS = int(os.environ.get("CHAOS_WORKERS") or 50)
FAILOVER_TIMEOUT = 15.0  # the pool's failover_timeout
RETRY_DEADLINE = 20.0  # no new attempt of a unit of work starts after this
UNIT_LIMIT = RETRY_DEADLINE + FAILOVER_TIMEOUT + 5.0  # a unit taking longer counts as hung

FAULTS = (
    "failover",
    "switchover",
    "blackhole",
    "reboot_reader",
    "crash_reader",
    "latency",
    "reset_writer",
    "reset_reader",
)
DNS_LAGS = (0.0, 0.5, 2.0, 5.0)
SCHEMA = (  # no unique key on events.id: a transaction applied twice would show as two rows
    "CREATE TABLE events(id varchar(32) NOT NULL, worker int NOT NULL)",
    "CREATE INDEX events_id ON events(id)",
    "CREATE TABLE counters(worker int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)",
)
# the same SQL on both engines; the values are the test's own ids and numbers, written in
INSERT = "INSERT INTO events VALUES ('{event}', {worker})"
BUMP = "UPDATE counters SET n = n + 1 WHERE worker = {worker}"
READ_BACK = "SELECT count(*) FROM events WHERE id = '{event}'"

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@dataclass
class Ledger:
    committed: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)  # some attempt was cut off at COMMIT: 0 or 1 times
    failed: set[str] = field(default_factory=set)  # gave up, never uncertain: must be absent
    last_commit: dict[int, float] = field(default_factory=dict)
    retries: int = 0
    found_committed: int = 0  # outcomes reported unknown that the read-back found committed
    errors: dict[str, int] = field(default_factory=dict)
    longest_gap: float = 0.0  # application-visible downtime: longest wait between two commits
    longest_unit: float = 0.0


async def worker(
    pool: aurora_async.AuroraPool[Any], ops: EngineOps, me: int, ledger: Ledger, stop: asyncio.Event
) -> None:
    n = 0
    ledger.last_commit[me] = time.monotonic()
    while not stop.is_set():
        n += 1
        event = f"{me}-{n}"
        started = time.monotonic()
        try:
            async for attempt in aurora_async.attempts_of(attempts=20, deadline=RETRY_DEADLINE):
                async with attempt as state, pool.acquire() as conn, ops.transaction(conn):
                    # an outcome reported unknown is resolved by reading back, then re-run if absent
                    if event in ledger.uncertain and await ops.scalar(conn, READ_BACK.format(event=event)):
                        ledger.found_committed += 1
                    else:
                        await ops.execute(conn, INSERT.format(event=event, worker=me))
                        await ops.execute(conn, BUMP.format(worker=me))
                if isinstance(state.last_error, TransactionResolutionUnknownError | FailoverSuccessError):
                    ledger.retries += 1
                if isinstance(state.last_error, TransactionResolutionUnknownError):
                    ledger.uncertain.add(event)
            ledger.committed.add(event)
            now = time.monotonic()
            ledger.longest_gap = max(ledger.longest_gap, now - ledger.last_commit[me])
            ledger.last_commit[me] = now
        except Exception as exc:  # the unit gave up: record how, keep going
            name = type(exc).__name__
            ledger.errors[name] = ledger.errors.get(name, 0) + 1
            target = ledger.uncertain if isinstance(exc, TransactionResolutionUnknownError) else ledger.failed
            target.add(event)
        ledger.longest_unit = max(ledger.longest_unit, time.monotonic() - started)


async def schedule(sim: AuroraSimulator, rng: random.Random, seconds: float, log: list[str]) -> None:
    """Faults drawn from ``rng`` for ``seconds``, each followed by a quiet spell drawn from ``rng``."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        await asyncio.sleep(rng.uniform(0.5, 2.5))  # the schedule's own pacing, not synchronisation
        fault = rng.choice(FAULTS)
        writer, readers = sim.writer_id, sim.reader_ids
        reader = rng.choice(readers)
        target = reader if fault.endswith("reader") else writer
        at = time.monotonic() - began
        if fault in ("failover", "switchover", "blackhole"):
            sim.dns_delay = rng.choice(DNS_LAGS)
            fault += f"[dns {sim.dns_delay:g}s]"
        if fault.startswith("failover"):
            await sim.failover()
        elif fault.startswith("switchover"):
            await sim.switchover()
        elif fault.startswith("blackhole"):
            await sim.blackhole(writer)
            await asyncio.sleep(rng.uniform(0.5, 3.0))  # how long Aurora takes to notice
            await sim.failover()
            await sim.restore(writer)
        elif fault == "reboot_reader":
            await sim.reboot(reader)
        elif fault == "crash_reader":
            await sim.crash(reader)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await sim.restore(reader)
        elif fault == "latency":
            await sim.latency(writer, rng.choice((0.05, 0.2, 0.5)))
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await sim.restore(writer)
        elif fault == "reset_writer":
            await sim.reset_connections(writer)
        else:
            await sim.reset_connections(reader)
        log.append(f"{at:.1f}s:{fault}({target})")


@pytest.mark.timeout(SECONDS + 4 * UNIT_LIMIT + 120)
@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_chaos(engine: str) -> None:
    async with AuroraSimulator(engine=engine, instances=3, max_connections=400) as sim:
        await run(sim, engine_ops(sim))


async def run(sim: AuroraSimulator, ops: EngineOps) -> None:
    rng = random.Random(SEED)
    ledger, faults = Ledger(), list[str]()
    options: dict[str, Any] = {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": FAILOVER_TIMEOUT,
    }
    tasks_before = asyncio.all_tasks()
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=10, max_size=40, **options) as pool:
        async with pool.acquire() as conn:
            for statement in SCHEMA:
                await ops.write(conn, statement)
            await ops.insert_many(conn, "counters", [(w, 0) for w in range(WORKERS)])
            await ops.write(conn, "SELECT 1")  # MySQL: commit the rows above (autocommit is off)
        stop = asyncio.Event()
        workers = [asyncio.ensure_future(worker(pool, ops, w, ledger, stop)) for w in range(WORKERS)]
        try:
            await schedule(sim, rng, SECONDS, faults)
            calm = time.monotonic()

            async def everyone_committed_since_the_last_fault() -> bool:
                return all(ledger.last_commit[w] > calm for w in range(WORKERS))

            await eventually(
                everyone_committed_since_the_last_fault,
                timeout=UNIT_LIMIT,
                what=f"every worker to commit after the last fault (seed {SEED})",
            )
        finally:
            stop.set()
            done, hung = await asyncio.wait(workers, timeout=UNIT_LIMIT)
            for task in hung:
                task.cancel()
            await asyncio.gather(*hung, return_exceptions=True)
        assert not hung, f"{len(hung)} workers hung (seed {SEED})"
        for task in done:
            task.result()
        rows = await ops.outside_rows(sim.writer_id, "SELECT id, worker FROM events")
        counts = await ops.outside_rows(sim.writer_id, "SELECT worker, n FROM counters")
        counters = {int(worker): int(n) for worker, n in counts}
        stats = pool.stats()

    stored = {str(event): int(owner) for event, owner in rows}
    doubled = len(rows) - len(stored)
    lost = ledger.committed - stored.keys()
    phantom = ledger.failed & stored.keys()
    per_worker: dict[int, int] = {}
    for owner in stored.values():
        per_worker[owner] = per_worker.get(owner, 0) + 1
    skewed = {
        w: (counters.get(w, 0), per_worker.get(w, 0))
        for w in range(WORKERS)
        if counters.get(w, 0) != per_worker.get(w, 0)
    }
    unexplained = stored.keys() - ledger.committed - ledger.uncertain
    violations = doubled + len(lost) + len(phantom) + len(skewed) + len(unexplained)
    kinds: dict[str, int] = {}
    for entry in faults:
        kind = entry.split(":", 1)[1].split("[")[0].split("(")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(
        f"\nchaos {sim.engine} seed={SEED} seconds={SECONDS:g} workers={WORKERS} faults={len(faults)} "
        f"{kinds} "
        f"committed={len(ledger.committed)} unknown_outcomes={len(ledger.uncertain)} "
        f"(found committed: {ledger.found_committed}) retries={ledger.retries} "
        f"gave_up={ledger.errors} max_downtime={ledger.longest_gap:.2f}s "
        f"longest_unit={ledger.longest_unit:.2f}s violations={violations}"
        f"\n  schedule: {' '.join(faults)}"
        f"\n  pool: {stats}"
    )
    assert not doubled, f"{doubled} transactions were applied twice (seed {SEED})"
    assert not lost, f"{len(lost)} acknowledged transactions missing (seed {SEED}): {sorted(lost)[:5]}"
    assert not phantom, f"{len(phantom)} failed transactions are stored (seed {SEED}): {sorted(phantom)[:5]}"
    assert not skewed, f"counters disagree with events (seed {SEED}): {skewed}"
    assert not unexplained, f"{len(unexplained)} stored events nobody committed (seed {SEED})"
    assert ledger.longest_unit < UNIT_LIMIT, f"a unit of work took {ledger.longest_unit:.1f} s (seed {SEED})"
    assert len(ledger.committed) > WORKERS, f"the load never got going (seed {SEED})"

    # nothing of ours is left: cluster, tasks, sockets, server sessions
    assert registry.clusters() == []

    async def no_tasks_left() -> bool:
        return not [t for t in asyncio.all_tasks() - tasks_before if t is not asyncio.current_task()]

    await eventually(no_tasks_left, timeout=5, what="aurora_async's tasks to end")
    assert sockets_to("127.0.42.") == []
    for instance in sim.instance_ids:
        # the only session left on each instance is the one asking
        assert await ops.client_sessions(instance) == 1, f"sessions left on {instance}"
