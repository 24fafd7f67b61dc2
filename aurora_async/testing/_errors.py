"""The simulator's own error type."""

from __future__ import annotations


class SimulatorError(RuntimeError):
    """The local Aurora simulator could not do what was asked (missing binaries, a server that did not
    start, an address already in use, an operation on an unknown instance, ...). The message says what
    went wrong and, where it can, what to do about it."""
