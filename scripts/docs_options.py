"""The options reference, generated from the option table (``aurora_async/_options.py``): one row per
field of ``Options`` with its default, what it accepts and its doc line, so the page cannot drift from
the code. Used by the docs build (``scripts/docs_hooks.py``) and by ``tests/unit/test_config.py``."""

from __future__ import annotations

import dataclasses
import enum
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package first

from aurora_async import _options as options
from aurora_async._plugins import Plugin, read_plugins

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- options-table -->"  # where docs/options.md gets the generated table
CLUSTER_MARKER = "<!-- cluster-settings -->"  # ... and the list of the options a cluster's connections share


def _default(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, tuple):
        return ", ".join(f"`{v.value if isinstance(v, enum.Enum) else v}`" for v in value) or "`()`"
    if isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, float):
        return f"`{value:g}` s"
    return f"`{value}`"


def _accepted(read: Any) -> str:
    if isinstance(read, options.Seconds):
        if not read.minimum:
            return "seconds, 0 or more" if read.allow_zero else "seconds, more than 0"
        return f"seconds, at least {read.minimum:g}" + (" (or 0)" if read.allow_zero else "")
    if isinstance(read, options.Choice):
        dashes = " (`-` for `_`)" if read.dashes else ""
        return "one of " + ", ".join(f"`{c}`" for c in read.accepted) + dashes
    known = {
        read_plugins: "plugin codes, a sequence or comma-separated: " + ", ".join(f"`{p}`" for p in Plugin),
        options.read_flag: "true or false (`1`/`0`, `yes`/`no`, `on`/`off` in a DSN)",
        options.read_count: "a whole number, at least 1",
        options.read_port: "a port, 1 to 65535",
        options.read_text: "a non-empty string",
        options.read_str: "a string",
        options.read_names: "instance ids, comma-separated or a list",
        options.read_pattern: "a host pattern, `?` standing for the instance id, optionally `:port`",
        options.read_code: "a dialect code of the connection's engine",
        options.read_as_is: "an object (keyword argument only)",
    }
    if getattr(options, "read_telemetry", None) is not None:
        known[options.read_telemetry] = "true or false; true needs the `otel` extra (the OpenTelemetry API)"
    if read in known:
        return known[read]
    # a reader this page does not know yet: its docstring's first line, else its name
    doc = (getattr(read, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else getattr(read, "__name__", type(read).__name__)


def option_rows() -> list[tuple[str, str, str, str]]:
    """(name, default, accepted values, doc line) for every option, in the table's order."""
    return [
        (f.name, _default(f.default), _accepted(f.metadata["read"]), f.metadata["doc"])
        for f in dataclasses.fields(options.Options)
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_cluster_settings() -> str:
    """The options connections to one cluster must agree on (``ClusterSettings``), as a sentence."""
    names = [f"`{f.name}`" for f in dataclasses.fields(options.ClusterSettings)]
    return ", ".join(names[:-1]) + " and " + names[-1]


def render_options_table() -> str:
    lines = ["| option | default | accepts | what it does |", "|---|---|---|---|"]
    for name, default, accepted, doc in option_rows():
        lines.append(f'| <span id="{name}"></span>`{name}` | {default} | {_cell(accepted)} | {_cell(doc)} |')
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_options_table())
