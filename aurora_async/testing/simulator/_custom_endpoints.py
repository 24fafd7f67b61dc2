"""Aurora custom endpoints on a simulated cluster, and the RDS API that describes them.

A custom endpoint is a listener of the fault proxy on the cluster's address prefix (octets 4 to 10)
whose targets are its members: the static members if any, else every instance but the excluded ones;
for a ``READER`` endpoint, only those that are replicas now. Like the reader endpoint, it follows a
failover ``dns_delay`` after the promotion (its "DNS" is updated with the cluster endpoints').

:class:`RdsApi` answers ``DescribeDBClusterEndpoints`` (RDS Query API: a form-encoded POST, an XML
answer) on loopback, so the library's custom-endpoint support runs through real aioboto3 clients;
``deny`` makes it answer ``AccessDenied``, as RDS does for a principal without
``rds:DescribeDBClusterEndpoints``. moto does not implement the operation.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import escape

from .._errors import SimulatorError
from .._http import serve_on_loopback
from ._network import ensure_free

if TYPE_CHECKING:
    from aiohttp import web

    from ._cluster_state import ClusterState
    from ._control_plane import ControlPlane

CustomEndpointKind = Literal["READER", "ANY"]
FIRST_CUSTOM_OCTET, LAST_CUSTOM_OCTET = 4, 10  # between the RDS Proxy endpoint (3) and the instances (11)
_NS = "http://rds.amazonaws.com/doc/2014-10-31/"


@dataclass
class CustomEndpoint:
    """One custom endpoint: its address, type and members as RDS would list them."""

    name: str
    address: str
    kind: CustomEndpointKind
    static: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    def members(self, state: ClusterState) -> list[str]:
        """The instances that belong to the endpoint, whatever their role."""
        if self.static:
            return [i for i in state.instance_ids if i in self.static]
        return [i for i in state.instance_ids if i not in self.excluded]

    def targets(self, state: ClusterState) -> list[str]:
        """Where the endpoint routes new connections now (a READER endpoint: its replicas only)."""
        members = self.members(state)
        if self.kind == "READER":
            return [i for i in members if state.instances[i].role == "reader"]
        return members


class CustomEndpoints:
    """The custom endpoints of one simulated cluster, and the RDS API that describes them."""

    def __init__(self) -> None:
        self.endpoints: dict[str, CustomEndpoint] = {}
        self.api: RdsApi | None = None

    def get(self, name: str) -> CustomEndpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise SimulatorError(f"unknown custom endpoint {name!r}") from None

    async def add(
        self,
        state: ClusterState,
        name: str,
        members: list[str] | None,
        excluded: list[str] | None,
        kind: str,
    ) -> CustomEndpoint:
        if name in self.endpoints or name in ("cluster", "reader", "proxy") or name.isdigit():
            raise SimulatorError(f"custom endpoint name {name!r} is taken")
        used = {e.address for e in self.endpoints.values()}
        free = [
            f"{state.prefix}{octet}"
            for octet in range(FIRST_CUSTOM_OCTET, LAST_CUSTOM_OCTET + 1)
            if f"{state.prefix}{octet}" not in used
        ]
        if not free:
            raise SimulatorError(f"at most {LAST_CUSTOM_OCTET - FIRST_CUSTOM_OCTET + 1} custom endpoints")
        ensure_free(free[:1], state.port)
        endpoint = CustomEndpoint(name, free[0], "ANY")
        self._set(state, endpoint, members, excluded, kind)
        targets = endpoint.targets(state)
        await state.proxy.call(
            "listen", name=f"custom-{name}", host=endpoint.address, port=state.port, targets=targets
        )
        self.endpoints[name] = endpoint
        if self.api is None:
            self.api = RdsApi(self)
            await self.api.start()
        state.timeline.record("custom endpoint added", f"{name} ({endpoint.kind}) -> {', '.join(targets)}")
        return endpoint

    async def modify(
        self,
        state: ClusterState,
        name: str,
        members: list[str] | None,
        excluded: list[str] | None,
        kind: str | None,
    ) -> None:
        """``ModifyDBClusterEndpoint``: new members (static or excluded) and type, routed at once."""
        endpoint = self.get(name)
        self._set(state, endpoint, members, excluded, kind or endpoint.kind)
        targets = endpoint.targets(state)
        await state.proxy.call("route", name=f"custom-{name}", targets=targets)
        state.timeline.record("custom endpoint modified", f"{name} ({endpoint.kind}) -> {', '.join(targets)}")

    @staticmethod
    def _set(
        state: ClusterState,
        endpoint: CustomEndpoint,
        members: list[str] | None,
        excluded: list[str] | None,
        kind: str,
    ) -> None:
        if kind not in ("READER", "ANY"):
            raise SimulatorError(f"a custom endpoint's kind is READER or ANY, not {kind!r}")
        if members and excluded:
            raise SimulatorError("give a custom endpoint static members or excluded members, not both")
        static = [state.get(i).instance_id for i in members or ()]
        endpoint.static, endpoint.excluded = static, [state.get(i).instance_id for i in excluded or ()]
        endpoint.kind = "READER" if kind == "READER" else "ANY"

    async def publish(self, state: ClusterState, at: float | None) -> None:
        """Point every custom endpoint at its targets, at ``at`` (with the cluster endpoints' DNS)."""
        for endpoint in self.endpoints.values():
            await state.proxy.call(
                "route", name=f"custom-{endpoint.name}", targets=endpoint.targets(state), at=at
            )

    async def close(self) -> None:
        if self.api is not None:
            api, self.api = self.api, None
            await api.close()


class RdsApi:
    """``DescribeDBClusterEndpoints`` on loopback (see the module docstring): pass
    :attr:`endpoint_url` to ``custom_endpoint_api_endpoint``; :attr:`calls` counts the requests."""

    def __init__(self, endpoints: CustomEndpoints) -> None:
        self._endpoints = endpoints
        self._runner: web.BaseRunner | None = None
        self._port: int | None = None
        self.deny = False  # answer AccessDenied, as for a principal without the permission
        self.calls: Counter[str] = Counter()

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise SimulatorError("the RDS API is not running")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        self._runner, self._port = await serve_on_loopback(self._handle)

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web  # noqa: PLC0415

        form = await request.post() if request.method == "POST" else request.query
        action = str(form.get("Action", ""))
        self.calls[action] += 1
        if self.deny:
            return _error(403, "AccessDenied", f"User is not authorized to perform: rds:{action}")
        if action != "DescribeDBClusterEndpoints":
            return _error(400, "InvalidAction", f"The action {action} is not valid for this web service")
        wanted = str(form.get("DBClusterEndpointIdentifier", "")).lower()
        found = [e for e in self._endpoints.endpoints.values() if not wanted or e.name.lower() == wanted]
        if wanted and not found:
            message = f"DBClusterEndpoint {wanted} not found"
            return _error(404, "DBClusterEndpointNotFoundFault", message)
        items = "".join(_endpoint_xml(e) for e in found)
        body = (
            f'<DescribeDBClusterEndpointsResponse xmlns="{_NS}"><DescribeDBClusterEndpointsResult>'
            f"<DBClusterEndpoints>{items}</DBClusterEndpoints></DescribeDBClusterEndpointsResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</DescribeDBClusterEndpointsResponse>"
        )
        return web.Response(body=body.encode(), status=200, content_type="text/xml")


def _endpoint_xml(endpoint: CustomEndpoint) -> str:
    def members(ids: list[str]) -> str:
        return "".join(f"<member>{escape(i)}</member>" for i in ids)

    return (
        "<DBClusterEndpointList>"
        f"<DBClusterEndpointIdentifier>{escape(endpoint.name)}</DBClusterEndpointIdentifier>"
        "<DBClusterIdentifier>aurora-simulator</DBClusterIdentifier>"
        f"<Endpoint>{escape(endpoint.address)}</Endpoint><Status>available</Status>"
        f"<EndpointType>CUSTOM</EndpointType><CustomEndpointType>{endpoint.kind}</CustomEndpointType>"
        f"<StaticMembers>{members(endpoint.static)}</StaticMembers>"
        f"<ExcludedMembers>{members(endpoint.excluded)}</ExcludedMembers>"
        "</DBClusterEndpointList>"
    )


def _error(status: int, code: str, message: str) -> web.StreamResponse:
    from aiohttp import web  # noqa: PLC0415

    body = (
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return web.Response(body=body.encode(), status=status, content_type="text/xml")


class CustomEndpointMethods:
    """``AuroraSimulator``'s custom-endpoint operations (a base class of it; see the module docstring)."""

    _running: Callable[[], ControlPlane]
    _operation: Callable[[], AbstractAsyncContextManager[ControlPlane]]

    async def add_custom_endpoint(
        self,
        name: str,
        members: Sequence[str | int] | None = None,
        *,
        excluded: Sequence[str | int] | None = None,
        kind: CustomEndpointKind = "ANY",
    ) -> str:
        """Create custom endpoint ``name`` (``CreateDBClusterEndpoint``): static ``members``, or every
        instance but ``excluded`` (instances added later included); ``kind`` ``"READER"`` routes only
        to the members that are replicas now, ``"ANY"`` to every member. Returns its ``host:port``;
        ``dsn(name)`` is a DSN for it, and :attr:`rds_api` describes it."""
        async with self._operation() as control:
            endpoint = await control.custom_endpoints.add(control, name, _ids(members), _ids(excluded), kind)
            return f"{endpoint.address}:{control.port}"

    async def modify_custom_endpoint(
        self,
        name: str,
        members: Sequence[str | int] | None = None,
        *,
        excluded: Sequence[str | int] | None = None,
        kind: CustomEndpointKind | None = None,
    ) -> None:
        """Change a custom endpoint's members (and type) (``ModifyDBClusterEndpoint``); new connections
        follow at once, the RDS API answers with the new members."""
        async with self._operation() as control:
            await control.custom_endpoints.modify(control, name, _ids(members), _ids(excluded), kind)

    def custom_endpoint_members(self, name: str) -> list[str]:
        """The instances custom endpoint ``name`` routes new connections to now."""
        control = self._running()
        return control.custom_endpoints.get(name).targets(control)

    @property
    def rds_api(self) -> RdsApi:
        """The RDS API on loopback (after the first :meth:`add_custom_endpoint`): its
        ``endpoint_url`` for ``custom_endpoint_api_endpoint``; ``deny = True`` refuses every call."""
        api = self._running().custom_endpoints.api
        if api is None:
            raise SimulatorError("no custom endpoint yet: the RDS API starts with the first one")
        return api


def _ids(ids: Sequence[str | int] | None) -> list[str] | None:
    return None if ids is None else [str(i) for i in ids]


def endpoint_address(control: ControlPlane, target: str | int) -> str:
    """The address of custom endpoint ``target``, else of instance ``target``."""
    endpoint = control.custom_endpoints.endpoints.get(str(target))
    return endpoint.address if endpoint is not None else control.get(target).address


async def close_custom_endpoints(control: ControlPlane | None) -> None:
    """Stop the RDS API (the fault proxy closes the endpoints' listeners itself)."""
    if control is not None:
        await control.custom_endpoints.close()
