"""Reader selection strategies, without sockets."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

from aurora_async._routing import order_readers
from aurora_async._topology import Instance, Role

READERS = [Instance(str(n), f"10.0.0.{n}", 5432, Role.READER) for n in (12, 13, 14)]


def _cluster() -> Any:
    return SimpleNamespace(reader_turns=itertools.count())


def test_round_robin_starts_at_the_next_reader_each_time() -> None:
    cluster = _cluster()
    firsts = [order_readers(READERS, cluster, "round_robin")[0].instance_id for _ in range(6)]
    assert firsts == ["12", "13", "14", "12", "13", "14"]
    assert [i.instance_id for i in order_readers(READERS, cluster, "round_robin")] == ["12", "13", "14"]
    assert order_readers([], cluster, "round_robin") == []


def test_round_robin_turns_are_per_cluster() -> None:
    one, two = _cluster(), _cluster()
    order_readers(READERS, one, "round_robin")
    assert order_readers(READERS, two, "round_robin")[0].instance_id == "12"


def test_random_keeps_every_reader_and_varies_the_first() -> None:
    cluster = _cluster()
    orders = [order_readers(READERS, cluster, "random") for _ in range(200)]
    assert all(sorted(o, key=lambda i: i.instance_id) == READERS for o in orders)
    assert {o[0].instance_id for o in orders} == {"12", "13", "14"}  # P(miss one) ~ 3 * (2/3)^200
