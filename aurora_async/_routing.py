"""Where a connection goes: the single-flight writer search, and placing a connection on the writer
or on a reader.

However many connections see the writer die at once, a cluster runs one writer search
(:class:`WriterSearch`): a watcher per known instance asks "are you the writer?" until one proves
it, first verified answer wins, the others are cancelled and closed, and every connection awaits
that one result. A connection then opens its own physical connection, as its own identity, to that
writer and checks the role again (:func:`connect_to_writer`). Reader placement races connects to the
known readers in the order ``reader_host_selector_strategy`` prefers (:func:`connect_to_reader`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from typing import Any

from ._concurrency import Backoff, race_first, retrieve_exception
from ._context import ClusterContext
from ._custom_endpoint import Membership, writer_must_be_member
from ._driver import RawConnection, discard, discard_first
from ._events import WriterSearchFinished
from ._global_failover import GlobalTarget, HomeModes
from ._identity import Identity, LoginRefused
from ._options import FailoverMode
from ._topology import Instance, Role, Topology, with_writer

log = logging.getLogger("aurora_async.topology")

POLL = 0.02  # how often the writer search asks an instance again (and the first back-off)
INITIAL = "initial"  # the writer search's name for the address the first connection was given
# a writer the search verified this recently (seconds) is connected to without a role check of our own
_VERIFIED_JUST_NOW = 0.5


class NoInstanceFound(Exception):
    """No instance in the wanted role could be reached before the deadline."""


class WriterSearch:
    """The cluster's one writer search at a time (see the module docstring)."""

    def __init__(self, cluster: ClusterContext) -> None:
        self._cluster = cluster
        self._running: asyncio.Task[Topology] | None = None

    async def find_writer(self, not_before: float, deadline: float) -> Topology:
        """A topology whose writer was verified at or after ``not_before``; every caller shares one
        search. Both on the loop's clock. Raises :class:`NoInstanceFound` at ``deadline`` and
        :class:`LoginRefused` when every instance refused every login the search could borrow."""
        cluster = self._cluster
        loop = asyncio.get_running_loop()
        while True:
            topology = cluster.topology
            if topology is not None and topology.writer is not None and topology.verified_at >= not_before:
                return topology
            if self._running is None or self._running.done():
                if cluster.closed:
                    raise NoInstanceFound("the cluster was closed")
                self._running = cluster.spawn(self._search(deadline), name="aurora_async writer search")
                self._running.add_done_callback(retrieve_exception)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoInstanceFound("no writer found before the failover deadline")
            try:
                async with asyncio.timeout(remaining):
                    return await asyncio.shield(self._running)
            except TimeoutError:
                if loop.time() >= deadline:
                    raise NoInstanceFound("no writer found before the failover deadline") from None
            except NoInstanceFound:
                if loop.time() >= deadline:
                    raise
                # a search that ended early (every watcher failed): pause before the next one
                await asyncio.sleep(min(POLL, max(0.0, deadline - loop.time())))
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if cluster.closed and current is not None and not current.cancelling():
                    raise NoInstanceFound("the cluster was closed") from None  # the search was, not us
                raise

    @property
    def running(self) -> bool:
        """Whether a writer search is under way."""
        return self._running is not None and not self._running.done()

    async def _search(self, deadline: float) -> Topology:
        """Watch every known instance at once until one proves it is the writer (:meth:`_race`), in a
        span of its own when telemetry is on, and tell the cluster's event listeners how it ended."""
        cluster = self._cluster
        cluster.stats["writer_searches"] += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        candidates = self._candidates()
        events = cluster.events
        watched = len(candidates)

        def finished(writer: str | None) -> None:  # (a search cancelled with the cluster tells nothing)
            events.emit(WriterSearchFinished, writer=writer, watched=watched, duration=loop.time() - started)

        with events.span("aurora_async.writer_search", **{"aurora_async.watched": watched}) as span:
            try:
                topology = await self._race(candidates, deadline, started)
            except (NoInstanceFound, LoginRefused):
                finished(None)
                raise
            writer = topology.writer.instance_id if topology.writer is not None else None
            if writer is not None:
                span.set_attribute("aurora_async.writer", writer)
            finished(writer)
            return topology

    async def _race(self, candidates: list[Instance], deadline: float, started: float) -> Topology:
        """Each instance has its own watcher, so an unreachable or black-holed instance never delays the
        others: a reachable one is asked again every ``POLL`` seconds on the connection already open,
        an unreachable one is reconnected to with a short back-off (up to ``topology_high_refresh``).
        """
        cluster = self._cluster
        loop = asyncio.get_running_loop()
        refused: dict[str, BaseException] = {}  # endpoint -> its last refusal, while it refuses
        won = await race_first(
            [functools.partial(self._watch, i, deadline, refused, len(candidates)) for i in candidates],
            discard=discard_first,
        )
        if won is None:
            if len(refused) == len(candidates):  # every instance refused every login it could borrow
                raise LoginRefused("every login was refused") from next(iter(refused.values()))
            raise NoInstanceFound("no writer found before the failover deadline")
        conn, instances = won
        writer_id = next(i.instance_id for i in instances if i.role is Role.WRITER)
        if cluster.opener.too_weak(conn):  # a stronger identity joined meanwhile: the monitor opens anew
            discard(conn)
            cluster.monitor_on(None, writer_id)
        else:
            cluster.monitor_on(conn, writer_id)
        topology = cluster.publish(instances, verified=True)
        if topology.writer is not None:
            cluster.writer_proved = (topology.writer, loop.time())
        log.info(
            "writer %s verified after %.0f ms (%d instances watched)",
            writer_id,
            (loop.time() - started) * 1000,
            len(candidates),
        )
        return topology

    def _candidates(self) -> list[Instance]:
        cluster = self._cluster
        known = list(cluster.topology.instances) if cluster.topology is not None else []
        initial = Instance(INITIAL, cluster.host, cluster.port, Role.WRITER)
        if all(i.endpoint != initial.endpoint for i in known):
            known.append(initial)
        # a blue/green deployment's target: its writer wins once a switchover let it take writes
        return known + cluster.blue_green.extra_candidates(known)

    async def _watch(
        self, instance: Instance, deadline: float, refused: dict[str, BaseException], watched: int
    ) -> tuple[RawConnection, list[Instance]] | None:
        """Ask ``instance`` "are you the writer?" until it says yes (its connection and the topology
        it reports) or ``deadline`` passes (None). While the instance refuses every login the cluster
        can borrow, it is in ``refused`` (and asked again, with the identities live then); once all
        ``watched`` instances refuse, every watcher gives up: users are the cluster's, so the writer
        refuses them too."""
        cluster = self._cluster
        assert cluster.dialect is not None
        driver = cluster.driver
        loop = asyncio.get_running_loop()
        aux = cluster.options.auxiliary_query_timeout
        conn: RawConnection | None = None
        backoff = Backoff(POLL, max(POLL, cluster.options.topology_high_refresh))
        failed_checks = 0
        try:
            while (remaining := deadline - loop.time()) > 0 and len(refused) < watched:
                if conn is None:
                    try:
                        conn = await cluster.opener.open_background(instance.host, instance.port, remaining)
                    except driver.connect_errors as exc:
                        if driver.is_login_error(exc):
                            log.info("probe %s: every login refused", instance.endpoint)
                            refused[instance.endpoint] = exc
                        else:
                            refused.pop(instance.endpoint, None)
                            log.debug("probe %s: unreachable (%s)", instance.endpoint, type(exc).__name__)
                        await backoff.pause(deadline)
                        continue
                    refused.pop(instance.endpoint, None)
                    backoff.reset()
                try:
                    if await cluster.dialect.is_writer(conn, min(aux, remaining)):
                        # this instance is the writer, whichever rows of the catalog claim so
                        instance_id = await cluster.dialect.instance_id(conn, aux)
                        rows = await cluster.read_topology(conn) or []
                        instances = with_writer(rows, instance_id, instance.host, instance.port)
                        log.debug("probe %s: the writer (%s)", instance.endpoint, instance_id)
                        found, conn = conn, None
                        return found, instances
                except driver.connect_errors as exc:
                    log.debug("probe %s: failed (%s)", instance.endpoint, type(exc).__name__)
                    discard(conn)
                    conn = None
                except Exception as exc:  # the catalog query itself failed: say so (once), ask again later
                    log.log(
                        logging.DEBUG if failed_checks else logging.WARNING,
                        "probe %s: the writer check failed: %r",
                        instance.endpoint,
                        exc,
                    )
                    failed_checks += 1
                    discard(conn)
                    conn = None
                    await backoff.pause(deadline)
                    continue
                if instance.instance_id == INITIAL:
                    # the address the application gave is an endpoint, not an instance: its DNS may
                    # lead elsewhere by now (after a failover, a blue/green switchover), so ask anew
                    discard(conn)
                    conn = None
                    await backoff.pause(deadline)
                    continue
                await asyncio.sleep(min(POLL, max(0.0, deadline - loop.time())))
            return None
        finally:
            discard(conn)


# -- placing a connection --------------------------------------------------------------------------------


async def _writer_topology(
    cluster: ClusterContext, identity: Identity, not_before: float, deadline: float, backoff: Backoff
) -> Topology:
    """The cluster's writer search (:meth:`WriterSearch.find_writer`) on behalf of ``identity``: a
    search that found every login refused before it could borrow this identity's (which works) is
    run again. Raises :class:`NoInstanceFound` at ``deadline``, :class:`LoginRefused` when this
    identity's login was refused too."""
    while True:
        try:
            return await cluster.find_writer(not_before, deadline)
        except LoginRefused:
            if cluster.opener.identities.refused_lately(identity):
                raise
            await backoff.pause(deadline)


async def home_region_target(
    cluster: ClusterContext,
    identity: Identity,
    modes: HomeModes,
    failed: Instance | None,
    *,
    not_before: float,
    deadline: float,
) -> GlobalTarget:
    """Which of a Global Database connection's home-region ``modes`` a failover from ``failed``
    (None: a connect) runs in: the one for the global writer's region. When the failure may have moved
    the writer (``failed`` was the writer, or the topology's writer is unknown or declared down), the
    cluster's writer search finds it first, verified at or after ``not_before``; else the topology's
    writer says. Raises as :func:`connect_to_writer` does when no writer is found before ``deadline``."""
    topology = cluster.topology
    writer = topology.writer if topology is not None else None
    moved = (
        writer is None
        or writer.instance_id in cluster.down
        or (failed is not None and (failed.role is Role.WRITER or failed.instance_id == writer.instance_id))
    )
    if moved:
        backoff = Backoff(POLL, max(POLL, cluster.options.topology_high_refresh))
        writer = (await _writer_topology(cluster, identity, not_before, deadline, backoff)).writer
    return modes.target(writer)


async def connect_to_writer(
    cluster: ClusterContext,
    identity: Identity,
    not_before: float,
    deadline: float,
    members: Membership | None = None,
) -> tuple[RawConnection, Instance]:
    """A connection, as ``identity``, to the instance that is the writer now. Raises
    :class:`NoInstanceFound` at ``deadline``, :class:`LoginRefused` when the writer refuses the
    identity's login, and :class:`~aurora_async._custom_endpoint.OutsideEndpoint` when the writer is
    not one of ``members`` (the connection's custom endpoint)."""
    loop = asyncio.get_running_loop()
    backoff = Backoff(POLL, max(POLL, cluster.options.topology_high_refresh))
    while True:
        topology = await _writer_topology(cluster, identity, not_before, deadline, backoff)
        writer = topology.writer
        assert writer is not None
        writer_must_be_member(members, writer)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NoInstanceFound("the failover deadline passed")
        # this very writer (at this address) answered a search or the topology monitor as the writer
        # since this call began, moments ago: no role check of our own (a writer demoted since refuses
        # the first write as read-only, which fails over again)
        proved = cluster.writer_proved
        trusted = (
            proved is not None
            and proved[0].endpoint == writer.endpoint
            and proved[0].instance_id == writer.instance_id
            and not_before < proved[1]
            and loop.time() - proved[1] < _VERIFIED_JUST_NOW
        )
        conn = await connect_in_role(cluster, identity, writer, None if trusted else Role.WRITER, remaining)
        if conn is not None:
            return conn, writer
        # that writer is gone too, or cannot be reached at its address: look again, backing off so
        # that a writer the catalog names but nobody can reach does not make every instance busy
        await backoff.pause(deadline)
        not_before = loop.time()


async def connect_to_reader(
    cluster: ClusterContext,
    identity: Identity,
    mode: FailoverMode,
    *,
    strategy: str,
    avoid: str | None,
    deadline: float,
    members: Membership | None = None,
    allowed: Callable[[Instance], bool] | None = None,
) -> tuple[RawConnection, Instance]:
    """A connection, as ``identity``, to a reader chosen by ``strategy`` (or, in ``reader_or_writer``
    mode, the writer as a last resort), among ``members`` (the connection's custom endpoint) when
    given, and among the instances ``allowed`` accepts (a Global Database's home-region mode: a writer
    it refuses is no candidate, not even the last resort of ``strict_reader``) when given. Raises
    :class:`NoInstanceFound` at ``deadline`` and :class:`LoginRefused` when every instance tried
    refused the identity's login."""
    loop = asyncio.get_running_loop()
    cluster.request_refresh()
    backoff = Backoff(POLL, 0.5)
    while True:
        topology = cluster.topology
        known = list(topology.readers) if topology is not None else []
        if members is not None:
            known = members.filter(known)
        if allowed is not None:
            known = [r for r in known if allowed(r)]
        readers = [r for r in known if r.instance_id not in cluster.down] or known  # skip dead hosts
        candidates = order_readers(
            [r for r in readers if r.instance_id != avoid] or readers, cluster, strategy
        )
        writer = topology.writer if topology is not None else None
        if writer is not None and members is not None and not members.allows(writer):
            writer = None
        if writer is not None and allowed is not None and not allowed(writer):
            writer = None
        if writer is not None and (mode == "reader_or_writer" or not readers):
            candidates.append(writer)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NoInstanceFound("no reader reachable before the failover deadline")
        refused: list[LoginRefused] = []

        async def attempt(
            instance: Instance, remaining: float = remaining, refused: list[LoginRefused] = refused
        ) -> tuple[RawConnection, Instance] | None:
            wanted = Role.READER if instance.role is Role.READER and mode == "strict_reader" else None
            try:
                conn = await connect_in_role(cluster, identity, instance, wanted, remaining)
            except LoginRefused as exc:
                refused.append(exc)
                return None
            return (conn, instance) if conn is not None else None

        won = await race_first([functools.partial(attempt, i) for i in candidates], discard=discard_first)
        if won is not None:
            return won
        if candidates and len(refused) == len(candidates):
            raise refused[0]
        await backoff.pause(deadline)


def order_readers(readers: list[Instance], cluster: Any, strategy: str) -> list[Instance]:
    """Readers in the order ``strategy`` (``reader_host_selector_strategy``) prefers them (``cluster``
    keeps the round-robin turn and the connections per instance)."""
    if strategy == "round_robin" and readers:
        start = next(cluster.reader_turns) % len(readers)
        return readers[start:] + readers[:start]
    if strategy == "least_connections":
        return sorted(readers, key=lambda r: cluster.load[r.instance_id])  # stable: topology order on ties
    shuffled = list(readers)
    random.shuffle(shuffled)
    return shuffled


async def connect_in_role(
    cluster: ClusterContext, identity: Identity, instance: Instance, role: Role | None, timeout: float
) -> RawConnection | None:
    """Connect to ``instance`` as ``identity`` and check it is in ``role`` (None: any role); None if
    not reachable; :class:`LoginRefused` if it refused the login. ``timeout`` bounds it all: the
    attempt gets ``connect_timeout`` of it, and an instance that accepts TCP but stays silent (resuming
    from Serverless v2 auto-pause) up to ``resume_timeout`` of it."""
    assert cluster.dialect is not None
    driver = cluster.driver
    try:
        conn = await cluster.opener.open_as(
            identity,
            instance.host,
            instance.port,
            min(identity.connect_timeout, timeout),
            resume_within=min(identity.resume_timeout, timeout),
        )
    except driver.connect_errors as exc:
        if driver.is_login_error(exc):
            raise LoginRefused(f"{instance.instance_id} refused the login") from exc
        return None
    try:
        # the cheap role check (is it in recovery?), as the incumbent does: the writer itself was
        # verified with the dialect's full "am I the writer?" query by the cluster's writer search
        if role is None:
            ok = True
        else:
            is_reader = await cluster.dialect.is_reader(conn, cluster.options.auxiliary_query_timeout)
            ok = is_reader == (role is Role.READER)
    except driver.connect_errors:
        ok = False
    except BaseException:
        discard(conn)
        raise
    if not ok:
        discard(conn)
        return None
    return conn
