"""Finding a new physical connection for a failed one: to the writer, or to a reader.

Writer failover waits for the cluster's single-flight writer search (one search however many
connections broke), then connects to the writer it found and checks the role again. Reader failover
races connects to the known readers and takes the first that answers in the right role.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from typing import Any

from ._cluster import Cluster
from ._concurrency import race_first
from ._config import FailoverMode
from ._driver import discard, discard_first
from ._identity import Identity, LoginRefused
from ._topology import Instance, Role


async def connect_to_writer(
    cluster: Cluster, identity: Identity, not_before: float, deadline: float
) -> tuple[Any, Instance]:
    """A connection, as ``identity``, to the instance that is the writer now. Raises ``TimeoutError``
    at ``deadline`` and :class:`LoginRefused` when the writer refuses the identity's login."""
    loop = asyncio.get_running_loop()
    pause = 0.02
    while True:
        try:
            topology = await cluster.find_writer(not_before, deadline)
        except LoginRefused:
            if cluster.identities.refused_lately(identity):
                raise
            # the search ended before it could borrow this identity's login, which works: look again
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, max(0.02, cluster.options.topology_high_refresh))
            continue
        writer = topology.writer
        assert writer is not None
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("the failover deadline passed")
        conn = await connect_in_role(cluster, identity, writer, Role.WRITER, remaining)
        if conn is not None:
            return conn, writer
        # that writer is gone too, or cannot be reached at its address: look again, backing off so
        # that a writer the catalog names but nobody can reach does not make every instance busy
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        pause = min(pause * 2, max(0.02, cluster.options.topology_high_refresh))
        not_before = time.monotonic()


async def connect_to_reader(
    cluster: Cluster,
    identity: Identity,
    mode: FailoverMode,
    *,
    strategy: str,
    avoid: str | None,
    deadline: float,
) -> tuple[Any, Instance]:
    """A connection, as ``identity``, to a reader chosen by ``strategy`` (or, in ``reader_or_writer``
    mode, the writer as a last resort). Raises ``TimeoutError`` at ``deadline`` and
    :class:`LoginRefused` when every instance tried refused the identity's login."""
    loop = asyncio.get_running_loop()
    cluster.request_refresh()
    pause = 0.02
    while True:
        topology = cluster.topology
        known = list(topology.readers) if topology is not None else []
        readers = [r for r in known if r.instance_id not in cluster.down] or known  # skip dead hosts
        candidates = order_readers(
            [r for r in readers if r.instance_id != avoid] or readers, cluster, strategy
        )
        writer = topology.writer if topology is not None else None
        if writer is not None and (mode == "reader_or_writer" or not readers):
            candidates.append(writer)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no reader reachable before the failover deadline")

        refused: list[LoginRefused] = []

        async def attempt(
            instance: Instance, remaining: float = remaining, refused: list[LoginRefused] = refused
        ) -> tuple[Any, Instance] | None:
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
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        pause = min(pause * 2, 0.5)


def order_readers(readers: list[Instance], cluster: Cluster, strategy: str) -> list[Instance]:
    """Readers in the order ``strategy`` (``reader_host_selector_strategy``) prefers them."""
    if strategy == "round_robin" and readers:
        start = next(cluster.reader_turns) % len(readers)
        return readers[start:] + readers[:start]
    if strategy == "least_connections":
        return sorted(readers, key=lambda r: cluster.load[r.instance_id])  # stable: topology order on ties
    shuffled = list(readers)
    random.shuffle(shuffled)
    return shuffled


async def connect_in_role(
    cluster: Cluster, identity: Identity, instance: Instance, role: Role | None, timeout: float
) -> Any | None:
    """Connect to ``instance`` as ``identity`` and check it is in ``role`` (None: any role); None if
    not reachable; :class:`LoginRefused` if it refused the login."""
    assert cluster.dialect is not None
    options = cluster.options
    try:
        conn = await cluster.open_as(
            identity, instance.host, instance.port, min(identity.connect_timeout, timeout)
        )
    except cluster.driver.connect_errors as exc:
        if cluster.driver.is_login_error(exc):
            raise LoginRefused(f"{instance.instance_id} refused the login") from exc
        return None
    try:
        # the cheap role check (is it in recovery?), as the incumbent does: the writer itself was
        # verified with the dialect's full "am I the writer?" query by the cluster's writer search
        if role is None:
            ok = True
        else:
            is_reader = await cluster.dialect.is_reader(conn, options.auxiliary_query_timeout)
            ok = is_reader == (role is Role.READER)
    except cluster.driver.connect_errors:
        ok = False
    except BaseException:
        discard(conn)
        raise
    if not ok:
        discard(conn)
        return None
    return conn
