"""What ``aurora_async doctor`` found: a list of checks, the instances it reached, and a verdict.

A :class:`Report` is plain data (no connection, no secret): it renders as an aligned text report for
people (:meth:`Report.format_text`) and as JSON for tools (:meth:`Report.to_json`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class Status(enum.StrEnum):
    """A check's outcome. ``warn`` and ``fail`` are problems (each comes with its fix); ``fail`` makes
    the command exit with status 1. ``info`` reports a fact; ``skip``: not run (a step it needs failed,
    or it does not apply)."""

    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One check: its ``name`` (``config``, ``host``, ``dns``, ``credentials``, ``login``, ``tls``,
    ``dialect``, ``topology``, ``instance_pattern``, ``blue_green``), what it found (``summary``), and
    for a problem the fix in one sentence. ``details``: the facts behind it, for ``--json``."""

    name: str
    status: Status
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_problem(self) -> bool:
        return self.status in (Status.WARN, Status.FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class InstanceReport:
    """One instance of the topology as the doctor reached it: ``answered_as`` is the instance id that
    answered at ``host:port`` (None when nothing did, ``error`` says why); ``rtt_ms`` the best of a few
    ``SELECT 1`` round trips."""

    instance_id: str
    role: str
    host: str
    port: int
    addresses: tuple[str, ...] = ()
    answered_as: str | None = None
    rtt_ms: float | None = None
    error: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def reached(self) -> bool:
        """Whether this instance's address answered as this instance."""
        return self.answered_as == self.instance_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "role": self.role,
            "host": self.host,
            "port": self.port,
            "addresses": list(self.addresses),
            "answered_as": self.answered_as,
            "rtt_ms": self.rtt_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class Report:
    """Everything one diagnosis found (see the module docstring). ``target`` is the DSN with its
    password masked; ``dialect`` the library's dialect code (``aurora-pg``, ``aurora-mysql``, ...)."""

    target: str
    engine: str | None
    checks: tuple[Check, ...]
    dialect: str | None = None
    instances: tuple[InstanceReport, ...] = ()
    elapsed: float = 0.0

    def check(self, name: str) -> Check:
        """The check called ``name`` (``KeyError`` when it did not run)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(check.name == name for check in self.checks)

    @property
    def problems(self) -> tuple[Check, ...]:
        """The checks that warned or failed, in order."""
        return tuple(check for check in self.checks if check.is_problem)

    @property
    def failed(self) -> bool:
        return any(check.status is Status.FAIL for check in self.checks)

    @property
    def exit_status(self) -> int:
        """0 when no check failed, 1 when one did."""
        return 1 if self.failed else 0

    @property
    def verdict(self) -> str:
        problems = self.problems
        if not problems:
            return "OK"
        failures = sum(1 for p in problems if p.status is Status.FAIL)
        noun = "problem" if len(problems) == 1 else "problems"
        return f"{len(problems)} {noun} ({failures} failed, {len(problems) - failures} warned)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "engine": self.engine,
            "dialect": self.dialect,
            "verdict": self.verdict,
            "exit_status": self.exit_status,
            "elapsed_s": round(self.elapsed, 3),
            "checks": [check.to_dict() for check in self.checks],
            "instances": [instance.to_dict() for instance in self.instances],
            "problems": [{"check": p.name, "status": p.status.value, "fix": p.fix} for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def format_text(self) -> str:
        """The report for people: one aligned line per check (the instances under the topology), each
        problem's fix under it, then the verdict."""
        width = max((len(check.name) for check in self.checks), default=8)
        lines = [f"aurora_async doctor: {self.target}"]
        for check in self.checks:
            lines.append(f"  {check.status.value.upper():<4}  {check.name:<{width}}  {check.summary}")
            if check.name == "topology":
                lines.extend(_instance_lines(self.instances, indent=8 + width))
            if check.fix and check.is_problem:
                lines.append(f"  {'':<4}  {'':<{width}}  fix: {check.fix}")
        lines.append("")
        if self.problems:
            lines.append(f"verdict: {self.verdict}")
            for number, problem in enumerate(self.problems, 1):
                lines.append(f"  {number}. [{problem.status.value}] {problem.name}: {problem.fix}")
        else:
            lines.append(f"verdict: OK ({self.elapsed:.2f} s)")
        return "\n".join(lines)

    def redacted(self, secrets: Iterable[str]) -> Report:
        """This report with every occurrence of each of ``secrets`` replaced by ``***``."""
        hidden = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        if not hidden:
            return self

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                for secret in hidden:
                    value = value.replace(secret, "***")
                return value
            if isinstance(value, Mapping):
                return {clean(k): clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(clean(v) for v in value)
            return value

        checks = tuple(
            replace(c, summary=clean(c.summary), fix=clean(c.fix), details=clean(c.details))
            for c in self.checks
        )
        instances = tuple(
            replace(i, host=clean(i.host), error=clean(i.error), addresses=clean(i.addresses))
            for i in self.instances
        )
        return replace(self, target=clean(self.target), checks=checks, instances=instances)


def _instance_lines(instances: Iterable[InstanceReport], indent: int) -> list[str]:
    rows = list(instances)
    if not rows:
        return []
    id_width = max(len(i.instance_id) for i in rows)
    end_width = max(len(i.endpoint) for i in rows)
    lines = []
    for i in rows:
        if i.reached:
            outcome = f"answers, SELECT 1 {i.rtt_ms:.1f} ms" if i.rtt_ms is not None else "answers"
        elif i.answered_as is not None:
            outcome = f"WRONG INSTANCE: {i.answered_as!r} answered"
        elif i.error is not None:
            outcome = f"UNREACHABLE: {i.error}"
        else:
            outcome = "not tried"
        lines.append(
            f"{'':<{indent}}{i.instance_id:<{id_width}}  {i.role:<6}  {i.endpoint:<{end_width}}  {outcome}"
        )
    return lines
