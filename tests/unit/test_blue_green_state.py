"""What a cluster makes of blue/green metadata (``aurora_async._blue_green``): the phase, the hold on
statements and connects, the target hosts the writer search watches, and which failovers count as a
switchover's."""

from __future__ import annotations

import asyncio

from aurora_async._blue_green import SOURCE, TARGET, BlueGreen, BlueGreenHost, Phase, phase_of
from aurora_async._topology import Instance, Role


def hosts(status: str, *, swapped: bool = False) -> list[BlueGreenHost]:
    blue = ["10.0.0.1", "10.0.0.11", "10.0.0.12"]
    green = ["10.0.0.101", "10.0.0.111", "10.0.0.112"]
    if swapped:  # after a switchover the target carries the blue names
        blue, green = ["10.0.0.101", "10.0.0.11", "10.0.0.12"], ["10.0.0.1", "10.0.0.111", "10.0.0.112"]
    return [BlueGreenHost(h, 5432, SOURCE, status) for h in blue] + [
        BlueGreenHost(h, 5432, TARGET, status) for h in green
    ]


def at(host: str) -> Instance:
    return Instance(host.rsplit(".", 1)[1], host, 5432, Role.WRITER)


def test_the_phase_is_the_furthest_known_status() -> None:
    assert phase_of([]) is Phase.NOT_CREATED
    assert phase_of(hosts("AVAILABLE")) is Phase.CREATED
    mixed = hosts("SWITCHOVER_INITIATED")[:2] + hosts("SWITCHOVER_IN_PROGRESS")[2:]
    assert phase_of(mixed) is Phase.IN_PROGRESS
    assert phase_of([BlueGreenHost("h", 1, SOURCE, "SOMETHING_NEW")]) is Phase.NOT_CREATED


async def test_statements_are_held_from_the_switchovers_start_until_green_takes_writes() -> None:
    bg = BlueGreen(hold_timeout=30.0)
    bg.update(hosts("AVAILABLE"))
    assert not bg.must_wait() and bg.poll_interval() == 1.0
    bg.update(hosts("SWITCHOVER_INITIATED"))
    assert bg.holding and bg.must_wait() and bg.switching
    waiter = asyncio.create_task(bg.wait())
    bg.update(hosts("SWITCHOVER_IN_PROGRESS"))
    await asyncio.sleep(0)  # (one turn of the loop: the waiter runs up to its wait)
    assert not waiter.done()
    bg.update(hosts("SWITCHOVER_IN_POST_PROCESSING", swapped=True))
    await asyncio.wait_for(waiter, 1.0)
    assert not bg.holding and bg.phase is Phase.POST
    bg.update(hosts("SWITCHOVER_COMPLETED", swapped=True))
    assert bg.poll_interval() is None and not bg.switching  # over: back to the topology's pace


async def test_a_hold_ends_by_itself_after_hold_timeout() -> None:
    bg = BlueGreen(hold_timeout=0.2)
    bg.update(hosts("SWITCHOVER_INITIATED"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bg.wait()  # no end of the switchover is ever seen
    assert 0.15 <= loop.time() - started < 2.0
    assert not bg.holding and not bg.must_wait()


def test_the_writer_search_also_watches_every_target_host_seen() -> None:
    bg = BlueGreen()
    bg.update(hosts("AVAILABLE"))
    known = [at("10.0.0.11"), at("10.0.0.12")]
    before = {i.host for i in bg.extra_candidates(known)}
    assert before == {"10.0.0.101", "10.0.0.111", "10.0.0.112"}
    bg.update(hosts("SWITCHOVER_COMPLETED", swapped=True))
    after = {i.host for i in bg.extra_candidates(known)}
    # the names green had before (still green's until DNS follows) and the ones it has now
    assert after == {"10.0.0.1", "10.0.0.101", "10.0.0.111", "10.0.0.112"}
    assert all(i.role is Role.READER for i in bg.extra_candidates(known))  # each must prove itself


async def test_which_failovers_are_a_switchovers() -> None:
    bg = BlueGreen(hold_timeout=30.0)
    bg.update(hosts("AVAILABLE"))
    assert bg.crossed_over(at("10.0.0.11"), at("10.0.0.111"))  # blue to green
    assert not bg.crossed_over(at("10.0.0.111"), at("10.0.0.112"))  # within green, no switchover seen
    assert not bg.crossed_over(at("10.0.0.11"), at("10.0.0.12"))
    bg.update(hosts("SWITCHOVER_IN_PROGRESS"))
    bg.update(hosts("AVAILABLE"))  # rolled back
    assert bg.crossed_over(at("10.0.0.11"), at("10.0.0.11"))  # dropped by it, back on blue


async def test_release_lets_every_waiter_go() -> None:
    bg = BlueGreen(hold_timeout=30.0)
    bg.update(hosts("SWITCHOVER_IN_PROGRESS"))
    waiters = [asyncio.create_task(bg.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    bg.release()  # the cluster closed
    await asyncio.wait_for(asyncio.gather(*waiters), 1.0)
