"""The stateful tests' own fixture."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def collect_garbage_at_teardown() -> Iterator[None]:
    """Collect the garbage a failed run leaves (connections the library leaked) once the test and its
    event loop are done. Their finalizers warn, and pytest formats those warnings' tracebacks, which on
    Python 3.11 parses source with ``ast``: left to a later collection, that can happen in the middle of
    an import that pytest is rewriting, and a re-entered ``ast.parse`` there fails the whole session
    with "SystemError: AST constructor recursion depth mismatch"."""
    yield
    gc.collect()
