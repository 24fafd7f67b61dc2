"""The plugins a connection runs: a closed set, so a misspelt one fails type checking (and, given as a
string, fails with a clear error when the options are read)."""

from __future__ import annotations

import enum
from typing import Any

from ._exceptions import ConfigurationError


class Plugin(enum.StrEnum):
    """A behaviour a connection can turn on with ``plugins=`` (the incumbent wrapper's plugin codes)."""

    INITIAL_CONNECTION = "initial_connection"  # connect() lands on the instance its endpoint promises
    AURORA_CONNECTION_TRACKER = "aurora_connection_tracker"  # close what is left on a demoted writer
    FAILOVER = "failover"  # a failed connection moves to an instance in its role
    HOST_MONITORING = "host_monitoring"  # probes cut a call short on a silently dead instance
    IAM = "iam"  # the password is an IAM token
    AWS_SECRETS_MANAGER = "aws_secrets_manager"  # user and password from a secret
    READ_WRITE_SPLITTING = "read_write_splitting"  # set_read_only() moves between writer and readers
    BLUE_GREEN = "bg"  # a blue/green switchover moves connections to green, as a pause

    def __repr__(self) -> str:  # as the code a user writes: Options(plugins=('failover', ...))
        return repr(self.value)


DEFAULT_PLUGINS: tuple[Plugin, ...] = (
    Plugin.INITIAL_CONNECTION,
    Plugin.AURORA_CONNECTION_TRACKER,
    Plugin.FAILOVER,
    Plugin.HOST_MONITORING,
)


def read_plugins(name: str, value: Any) -> tuple[Plugin, ...]:
    """``plugins=``: a sequence of plugin codes, or a comma-separated string of them (in a DSN)."""
    if isinstance(value, str):
        codes = [c.strip() for c in value.split(",") if c.strip()]
    elif isinstance(value, (list, tuple)):
        codes = [str(c).strip() for c in value]
    else:
        raise ConfigurationError(
            f"{name} must be a tuple of plugin codes or a comma-separated string, not {value!r}"
        )
    accepted = ", ".join(Plugin)
    plugins = []
    for code in codes:
        try:
            plugins.append(Plugin(code))
        except ValueError:
            raise ConfigurationError(f"unknown plugin code {code!r}: accepted are {accepted}") from None
    return tuple(dict.fromkeys(plugins))
