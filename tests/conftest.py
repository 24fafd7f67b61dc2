"""Fixtures shared by the whole suite (the simulator fixtures come from aurora_async's pytest plugin)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest_plugins = ["tests.aws"]  # the moto_endpoint fixture


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (ours must all be owned and awaited)."""
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:
        left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not left or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    assert not left, f"tasks left running: {left}"
