"""``aurora_async doctor``: what the library sees of a real cluster, and what would go wrong.

``python -m aurora_async doctor DSN [--option name=value ...] [--json]`` (or the ``aurora-async-doctor``
console script) runs :func:`diagnose` and prints its :class:`Report`: the options as the library parses
them, the kind of endpoint, DNS, credentials (IAM, Secrets Manager), login, TLS, the dialect, the
topology with each instance's role and round-trip time, whether the instance host pattern leads to each
instance, and Blue/Green metadata. Every problem comes with its fix; nothing secret is ever shown.
"""

from __future__ import annotations

from ._diagnosis import diagnose
from ._report import Check, InstanceReport, Report, Status

__all__ = ["Check", "InstanceReport", "Report", "Status", "diagnose"]
