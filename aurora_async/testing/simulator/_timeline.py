"""What the simulator did, and when: a timeline of events and the report of one failover."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

logger = logging.getLogger("aurora_async.testing")


@dataclass(frozen=True)
class TimelineEvent:
    """One step the simulator took. ``at`` is a :func:`time.monotonic` timestamp."""

    at: float
    step: str
    detail: str = ""


@dataclass
class Timeline:
    """Every event since the simulator started, in order."""

    started_at: float = field(default_factory=time.monotonic)
    events: list[TimelineEvent] = field(default_factory=list)

    def record(self, step: str, detail: str = "", at: float | None = None) -> TimelineEvent:
        now = time.monotonic()
        event = TimelineEvent(now if at is None else at, step, detail)
        self.events.append(event)
        self.events.sort(key=lambda e: e.at)
        when = f" (in {event.at - now:.2f} s)" if event.at > now else ""
        logger.info("%s%s%s", step, f": {detail}" if detail else "", when)
        return event

    def discard(self, event: TimelineEvent) -> None:
        if event in self.events:
            self.events.remove(event)

    def since(self, start: float) -> list[TimelineEvent]:
        return [e for e in self.events if e.at >= start]


@dataclass
class FailoverReport:
    """The outcome of :meth:`AuroraSimulator.failover` / :meth:`~AuroraSimulator.switchover`.

    ``events`` run from the loss of the writer to the old writer's rejoin; the endpoint DNS update,
    which happens ``dns_delay`` later in the background, is added to ``events`` when it is scheduled and
    happens at its ``at`` time (see :meth:`AuroraSimulator.wait_dns_settled`).
    """

    kind: str
    old_writer: str
    new_writer: str
    started_at: float
    events: list[TimelineEvent]

    def offset(self, event: TimelineEvent) -> float:
        """Seconds from the start of the failover to ``event``."""
        return event.at - self.started_at

    def durations(self) -> dict[str, float]:
        """Seconds each step took, measured from the previous step's end."""
        result: dict[str, float] = {}
        previous = self.started_at
        for event in self.events:
            result[event.step] = event.at - previous
            previous = event.at
        return result

    def format(self) -> str:
        lines = [f"{self.kind}: writer {self.old_writer} -> {self.new_writer}"]
        previous = self.started_at
        for event in self.events:
            lines.append(
                f"  +{self.offset(event) * 1000:8.1f} ms  (+{(event.at - previous) * 1000:7.1f})  "
                f"{event.step}{': ' + event.detail if event.detail else ''}"
            )
            previous = event.at
        return "\n".join(lines)
