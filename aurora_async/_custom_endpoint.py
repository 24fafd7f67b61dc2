"""Aurora custom endpoints: which instances a connection made through one may use.

A custom endpoint (``<name>.cluster-custom-<id>.<region>.rds.amazonaws.com``) is a subset of a
cluster's instances: its *static members*, or every instance but its *excluded members*; of type
``READER`` (only the members that are replicas at the moment) or ``ANY``. A connection made through it
stays on those instances: at connect (stale DNS correction), at failover and when read/write splitting
picks a reader. The membership belongs to the connection's endpoint, not to its cluster: connections
through the writer endpoint and through a custom endpoint share one ``Cluster`` (topology, writer
search), yet each keeps its own set.

Where the membership comes from:

- ``custom_endpoint_members`` (and ``custom_endpoint_type``): given by the user; no AWS call;
- otherwise the RDS API, ``DescribeDBClusterEndpoints`` through aioboto3 (the ``aws`` extra), read
  once per cluster and endpoint by a single flight, cached, and read again every
  ``custom_endpoint_refresh`` seconds (the incumbent's 30 s) by a task the cluster owns; connect()
  waits up to ``custom_endpoint_info_timeout`` for the first answer. A refusal
  (``rds:DescribeDBClusterEndpoints`` not allowed) raises :class:`CustomEndpointError` at connect; a
  later failed refresh keeps the last membership known.

The failover mode a custom endpoint defaults to (no ``failover_mode`` given) is ``strict_writer`` for
an ``ANY`` endpoint, as the incumbent: the connection follows the writer while the writer is a member,
and a failover whose new writer is not one fails with :class:`FailoverFailedError` saying so. For a
``READER`` endpoint it is ``reader_or_writer`` among the members that are replicas: such an endpoint
never routes to the writer, so a writer-following mode would either leave the endpoint at once or
fail every connect.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._auth import _aws_code
from ._concurrency import Backoff, retrieve_exception
from ._exceptions import ConfigurationError, CustomEndpointError
from ._options import FailoverMode, Options
from ._rds_hosts import RdsUrlType, classify_host
from ._topology import Instance, Role

log = logging.getLogger("aurora_async.custom_endpoint")

EndpointType = Literal["READER", "ANY"]
ENDPOINT_TYPES: tuple[EndpointType, ...] = ("READER", "ANY")
PERMISSION = "rds:DescribeDBClusterEndpoints"


class OutsideEndpoint(Exception):
    """The instance a connection must go to (the writer) is not a member of its custom endpoint."""


@dataclass(frozen=True)
class Membership:
    """Who belongs to a custom endpoint: ``static`` members if any, else every instance but
    ``excluded``; a ``READER`` endpoint only serves the members that are replicas."""

    name: str
    kind: EndpointType = "ANY"
    static: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()

    def member(self, instance_id: str) -> bool:
        """Whether the instance is one of the endpoint's members, whatever its role."""
        return instance_id in self.static if self.static else instance_id not in self.excluded

    def allows(self, instance: Instance) -> bool:
        """Whether a connection made through the endpoint may be placed on ``instance`` now."""
        if self.kind == "READER" and instance.role is Role.WRITER:
            return False
        return self.member(instance.instance_id)

    def filter(self, instances: Iterable[Instance]) -> list[Instance]:
        return [i for i in instances if self.allows(i)]

    def describe(self) -> str:
        if self.static:
            who = f"members {', '.join(sorted(self.static))}"
        else:
            who = (
                f"all instances but {', '.join(sorted(self.excluded))}" if self.excluded else "all instances"
            )
        return f"custom endpoint {self.name!r} ({self.kind}: {who})"


@dataclass(frozen=True)
class EndpointSource:
    """Where a custom endpoint's membership comes from (parsed once, with the options). It keys the
    cluster's one monitor per endpoint, so it holds only what the members depend on: how long one
    connect waits for them and which failover mode a connection chose are that connection's own."""

    name: str
    region: str | None
    api_endpoint: str | None
    refresh: float
    explicit: Membership | None  # custom_endpoint_members: no API call
    aws_session: Any = field(default=None, repr=False)  # compared by identity: whose AWS principal


class MembershipMonitor:
    """One custom endpoint's membership, for the connections of one cluster made through it: fetched
    by one task at a time, then refreshed in the background by a task of the cluster."""

    def __init__(
        self,
        source: EndpointSource,
        spawn: Callable[..., asyncio.Task[Any]],
        default_session: Callable[[], Any],
    ) -> None:
        self.source = source
        self.membership: Membership | None = source.explicit
        self.fetches = 0
        self._spawn = spawn
        self._default_session = default_session
        self._fetching: asyncio.Task[Membership] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<MembershipMonitor {self.membership.describe() if self.membership else self.source.name}>"

    async def ready(self, timeout: float) -> Membership:
        """The membership; the first time, fetched (the caller waiting up to ``timeout``, its
        ``custom_endpoint_info_timeout``), and from then on refreshed in the background. Raises
        :class:`CustomEndpointError`."""
        if self.membership is not None:
            return self.membership
        if self._fetching is None or self._fetching.done():
            self._fetching = self._spawn(
                self._fetch(), name=f"aurora_async custom endpoint {self.source.name}"
            )
            self._fetching.add_done_callback(retrieve_exception)
        try:
            async with asyncio.timeout(timeout):
                membership = await asyncio.shield(self._fetching)
        except TimeoutError:
            raise CustomEndpointError(
                f"no answer from the RDS API about custom endpoint {self.source.name!r} within "
                f"custom_endpoint_info_timeout={timeout:g} s"
            ) from None
        self.membership = membership
        if self._refreshing is None:
            self._refreshing = self._spawn(
                self._refresh(), name=f"aurora_async custom endpoint refresh {self.source.name}"
            )
        return membership

    async def _refresh(self) -> None:
        backoff = Backoff(self.source.refresh, self.source.refresh * 4)
        loop = asyncio.get_running_loop()
        while True:
            await backoff.pause(loop.time() + backoff.ceiling)
            try:
                membership = await self._fetch()
            except CustomEndpointError as exc:  # keep what was known; ask again, less often
                log.warning(
                    "custom endpoint %r: refresh failed, keeping the last membership: %s",
                    self.source.name,
                    exc,
                )
                continue
            backoff.reset()
            if membership != self.membership:
                log.info(
                    "%s (was %s)",
                    membership.describe(),
                    self.membership.describe() if self.membership else "?",
                )
                self.membership = membership

    async def _fetch(self) -> Membership:
        """``DescribeDBClusterEndpoints`` for the endpoint."""
        source = self.source
        self.fetches += 1
        session = source.aws_session if source.aws_session is not None else self._default_session()
        kwargs: dict[str, Any] = {"region_name": source.region}
        if source.api_endpoint:
            kwargs["endpoint_url"] = source.api_endpoint
        try:
            async with session.client("rds", **kwargs) as rds:
                response = await rds.describe_db_cluster_endpoints(
                    DBClusterEndpointIdentifier=source.name,
                    Filters=[{"Name": "db-cluster-endpoint-type", "Values": ["custom"]}],
                )
        except Exception as exc:  # botocore's ClientError, NoCredentialsError, ...: named, not dumped
            code = _aws_code(exc)
            hint = (
                f" (is {PERMISSION} allowed for these AWS credentials?)" if code and "Denied" in code else ""
            )
            raise CustomEndpointError(
                f"could not read custom endpoint {source.name!r} with {PERMISSION}: "
                f"{code or type(exc).__name__}{hint}",
                code=code,
            ) from None
        return membership_from(source.name, response)


def membership_of(
    monitors: Mapping[EndpointSource, MembershipMonitor], source: EndpointSource | None
) -> Membership | None:
    """The members of custom endpoint ``source`` as its cluster knows them now (None: no endpoint)."""
    monitor = monitors.get(source) if source is not None else None
    return monitor.membership if monitor is not None else None


def mode_of(
    monitors: Mapping[EndpointSource, MembershipMonitor],
    source: EndpointSource | None,
    given: FailoverMode,
    *,
    mode_given: bool,
) -> FailoverMode:
    """The failover mode of a connection through ``source``: ``given`` (``failover_mode``), unless the
    caller left it to the endpoint (not ``mode_given``) and the endpoint is a READER one (see the
    module docstring)."""
    if source is None or mode_given:
        return given
    membership = membership_of(monitors, source)
    return "reader_or_writer" if membership is not None and membership.kind == "READER" else given


def membership_from(name: str, response: Any) -> Membership:
    """The membership in a ``DescribeDBClusterEndpoints`` response."""
    endpoints = response.get("DBClusterEndpoints") if isinstance(response, dict) else None
    found = [
        e
        for e in endpoints or []
        if isinstance(e, dict) and str(e.get("DBClusterEndpointIdentifier", "")).lower() == name.lower()
    ]
    if not found:
        raise CustomEndpointError(f"the RDS API knows no custom endpoint named {name!r}")
    endpoint = found[0]
    kind = str(endpoint.get("CustomEndpointType") or "ANY").upper()
    return Membership(
        name,
        "READER" if kind == "READER" else "ANY",
        frozenset(str(m) for m in endpoint.get("StaticMembers") or ()),
        frozenset(str(m) for m in endpoint.get("ExcludedMembers") or ()),
    )


def writer_must_be_member(membership: Membership | None, writer: Instance) -> None:
    """Raise :class:`OutsideEndpoint` when ``writer`` is not a member of the endpoint."""
    if membership is not None and not membership.allows(writer):
        raise OutsideEndpoint(
            f"the writer is now {writer.instance_id}, which is not a member of {membership.describe()}"
        )


def endpoint_source(options: Options, host: str) -> EndpointSource | None:
    """The custom endpoint ``host`` is (a ``cluster-custom-`` host, or ``custom_endpoint``), checked
    before any I/O; None when it is none, or the connection is a plain one (``plugins=()``).

    :raises ConfigurationError: no region for the RDS API, or aioboto3 missing."""
    rds = classify_host(host)
    custom = rds.url_type is RdsUrlType.RDS_CUSTOM_CLUSTER
    name = options.custom_endpoint or (rds.name if custom else None)
    if name is None or not options.plugins:
        if options.custom_endpoint_members or options.custom_endpoint_type:
            raise ConfigurationError(
                "custom_endpoint_members and custom_endpoint_type apply to a custom endpoint: connect to a "
                "cluster-custom- host, or name the endpoint with custom_endpoint"
            )
        return None
    kind: EndpointType = "READER" if options.custom_endpoint_type == "reader" else "ANY"
    explicit = None
    region = options.custom_endpoint_region or rds.region
    if options.custom_endpoint_members:
        explicit = Membership(name, kind, frozenset(options.custom_endpoint_members))
    else:
        if importlib.util.find_spec("aioboto3") is None:
            raise ConfigurationError(
                f"custom endpoint {name!r}: reading its members needs aioboto3 (pip install "
                "'aurora_async[aws]'), or give them with custom_endpoint_members"
            )
        if region is None:
            raise ConfigurationError(
                f"custom endpoint {name!r}: {host!r} is not an RDS host name, so set custom_endpoint_region "
                "(e.g. 'us-east-1'), or give the members with custom_endpoint_members"
            )
    return EndpointSource(
        name=name,
        region=region,
        api_endpoint=options.custom_endpoint_api_endpoint,
        refresh=options.custom_endpoint_refresh,
        explicit=explicit,
        aws_session=options.aws_session,
    )
