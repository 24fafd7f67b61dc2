"""The checks of ``aurora_async doctor``, run in order against a real cluster with the library's own
parts: its configuration parser, host classification, credentials code, driver records and dialects.

Each network step has its own deadline (``timeout``). Secrets (the DSN's password, IAM tokens, a
secret's password) are collected as they appear and masked in the finished report.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .._auth import Authenticator, Credentials, CredentialSource, IamSource, SecretSource
from .._config import Config, parse
from .._dialect import Dialect, HostBuilder, host_builder
from .._driver import discard
from .._events import EventHub
from .._exceptions import ConfigurationError, CredentialsError
from .._local_socket import is_local_socket
from .._rds_hosts import RdsUrlType, classify_host
from .._rds_proxy import behind_proxy
from .._tls import Tls
from .._topology import Instance, Role
from ._probes import ServerTls, mysql_server_tls, negotiated_tls, pg_server_tls
from ._report import Check, InstanceReport, Report, Status

T = TypeVar("T")

DIALECT_NAMES = {
    "aurora-pg": "Aurora PostgreSQL",
    "multi-az-pg": "RDS Multi-AZ DB cluster, PostgreSQL",
    "rds-pg": "RDS for PostgreSQL",
    "pg": "PostgreSQL",
    "aurora-mysql": "Aurora MySQL",
    "multi-az-mysql": "RDS Multi-AZ DB cluster, MySQL",
    "rds-mysql": "RDS for MySQL",
    "mysql": "MySQL",
}
_VERIFY_FIXES = {
    "postgresql": "verify the server: ?sslmode=verify-full&sslrootcert=global-bundle.pem in the DSN (the "
    "RDS CA bundle), or ssl=ssl.create_default_context(cafile='global-bundle.pem')",
    "mysql": "verify the server: ssl=ssl.create_default_context(cafile='global-bundle.pem') (the RDS CA "
    "bundle; --ssl-ca on the command line)",
}
_PATTERN_EXAMPLE = "'?.abcdefgh.us-east-1.rds.amazonaws.com' or '10.0.0.?:5432'"


async def diagnose(dsn: str | None = None, *, timeout: float = 5.0, **options: Any) -> Report:
    """Check what ``aurora_async.connect(dsn, **options)`` would meet on a real cluster: the options,
    the endpoint, DNS, credentials, login, TLS, the dialect, the topology and every instance's address.

    :param timeout: the deadline of each network step, in seconds.
    :returns: the :class:`Report` (secrets masked); it never raises for what it finds.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    diagnosis = _Diagnosis(dsn, options, float(timeout))
    try:
        await diagnosis.run()
    finally:
        await diagnosis.close()
    report = Report(
        target=_masked_dsn(dsn, options),
        engine=diagnosis.config.engine if diagnosis.config is not None else None,
        checks=tuple(diagnosis.checks),
        dialect=diagnosis.dialect.code if diagnosis.dialect is not None else None,
        instances=tuple(diagnosis.instances),
        elapsed=loop.time() - started,
    )
    return report.redacted(diagnosis.secrets)


class _RecordingAuthenticator(Authenticator):
    """The library's authenticator, noting every password it hands out (so the report can mask it)."""

    def __init__(self) -> None:
        self._aws_session: Any = None
        super().__init__(default_session=self._session_for_default)
        self.seen: set[str] = set()

    def _session_for_default(self) -> Any:
        if self._aws_session is None:
            import aioboto3  # noqa: PLC0415 - the optional 'aws' extra, checked when the config was parsed

            self._aws_session = aioboto3.Session()
        return self._aws_session

    async def credentials(
        self,
        source: CredentialSource,
        host: str,
        port: int,
        *,
        stale: Credentials | None = None,
        events: EventHub | None = None,
    ) -> tuple[Credentials, bool]:
        creds, cached = await super().credentials(source, host, port, stale=stale, events=events)
        self.seen.add(creds.password)
        return creds, cached


@dataclass(frozen=True)
class _Reached:
    """The instance the login connection reached through the endpoint."""

    instance_id: str
    role: Role


class _Diagnosis:
    """One run of the checks; ``checks`` grows as they run."""

    def __init__(self, dsn: str | None, options: dict[str, Any], timeout: float) -> None:
        self.dsn = dsn
        self.options = options
        self.timeout = timeout
        self.checks: list[Check] = []
        self.config: Config | None = None
        self.dialect: Dialect | None = None
        self.instances: list[InstanceReport] = []
        self.auth = _RecordingAuthenticator()
        self._given_secrets = _given_secrets(dsn, options)
        self._conn: Any = None

    @property
    def secrets(self) -> set[str]:
        found = set(self._given_secrets) | self.auth.seen
        if self.config is not None and self.config.password:
            found.add(self.config.password)
        return found | {quote(s, safe="") for s in found}

    def add(
        self,
        name: str,
        status: Status,
        summary: str,
        fix: str | None = None,
        details: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        self.checks.append(Check(name, status, summary, fix, {**(details or {}), **more}))

    def errors(self, config: Config) -> tuple[type[BaseException], ...]:
        """What a network step with the driver may raise when the server cannot be used."""
        return (*config.driver.connect_errors, TimeoutError, CredentialsError)

    async def close(self) -> None:
        discard(self._conn)
        self._conn = None
        self.auth.close()

    async def step(self, work: Awaitable[T]) -> T:
        """``work`` within the deadline of one step."""
        async with asyncio.timeout(self.timeout):
            return await work

    # -- the checks, in order --------------------------------------------------------------------

    async def run(self) -> None:
        config = self.check_config()
        if config is None:
            return
        self.config = config
        self.check_host(config)
        resolves = await self.check_dns(config)
        credentials_ok = await self.check_credentials(config)
        if not resolves:
            self.add("login", Status.SKIP, "not tried: the host does not resolve")
            self.add("tls", Status.SKIP, "not checked: the host does not resolve")
        else:
            if credentials_ok:
                self._conn = await self.check_login(config)
            else:
                self.add("login", Status.SKIP, "not tried: no credentials")
            await self.check_tls(config, self._conn)
        if self._conn is None:
            for name in ("dialect", "topology", "instance_pattern", "blue_green"):
                self.add(name, Status.SKIP, "not checked: no connection")
            return
        dialect = await self.check_dialect(config, self._conn)
        if dialect is None:
            for name in ("topology", "instance_pattern", "blue_green"):
                self.add(name, Status.SKIP, "not checked: no dialect")
            return
        self.dialect = dialect
        topology = await self.check_topology(config, self._conn, dialect)
        if topology is not None:
            await self.check_instances(config, dialect, *topology)
        await self.check_blue_green(config, self._conn, dialect)

    def check_config(self) -> Config | None:
        try:
            config = parse(self.dsn, **self.options)
        except ConfigurationError as exc:
            self.add(
                "config",
                Status.FAIL,
                str(exc),
                "change the DSN or option the message names to an accepted value",
            )
            return None
        options = config.options
        plugins = ",".join(options.plugins) or "none"
        via = f" via {config.identity.credentials.kind}" if config.identity.credentials else ""
        self.add(
            "config",
            Status.OK,
            f"{config.engine} {config.user or '?'}{via}@{config.host}:{config.port}/{config.database or ''}; "
            f"plugins {plugins}; failover_mode {options.failover_mode}",
            engine=config.engine,
            host=config.host,
            port=config.port,
            user=config.user,
            database=config.database,
            plugins=list(options.plugins),
            failover_mode=options.failover_mode,
            tls_settings=config.identity.tls.label,
        )
        return config

    def check_host(self, config: Config) -> None:
        host, options = config.host, config.options
        rds = classify_host(host)
        kind = rds.url_type
        pattern = options.cluster_instance_host_pattern
        details: dict[str, Any] = {"kind": kind.name.lower(), "endpoint_name": rds.name, "region": rds.region}
        if is_local_socket(host):
            self.add("host", Status.OK, "a local Unix socket: one server, no topology", kind="unix_socket")
            return
        if kind is RdsUrlType.RDS_PROXY or behind_proxy(options, host):
            if behind_proxy(options, host):
                self.add(
                    "host",
                    Status.INFO,
                    "an RDS Proxy endpoint: failover is the proxy's job (aurora_async reconnects through "
                    "the proxy only: no topology, no host monitoring)",
                    details=details,
                )
            else:
                self.add(
                    "host",
                    Status.INFO,
                    "an RDS Proxy endpoint, with rds_proxy=False: the instances are reached directly",
                    details=details,
                )
            return
        if kind is RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER:
            self.add(
                "host",
                Status.WARN,
                f"the global database writer endpoint of {rds.name!r}: not yet supported for failover "
                "(aurora_async has no global-database dialect, and the endpoint names no region)",
                "connect to the primary region's cluster writer endpoint "
                "(<cluster>.cluster-<id>.<region>.rds.amazonaws.com) instead",
                details=details,
            )
            return
        if kind is RdsUrlType.RDS_AURORA_LIMITLESS_DB_SHARD_GROUP:
            self.add(
                "host",
                Status.WARN,
                f"an Aurora Limitless shard group endpoint ({rds.name!r}): aurora_async's topology and "
                "failover do not cover Limitless routers",
                "connect with plugins='' (a plain connection) to a shard group endpoint",
                details=details,
            )
            return
        where = f" in {rds.region}" if rds.region else ""
        found = {
            RdsUrlType.RDS_WRITER_CLUSTER: f"the cluster writer endpoint of {rds.name!r}{where}",
            RdsUrlType.RDS_READER_CLUSTER: f"the cluster reader endpoint of {rds.name!r}{where} "
            "(failover_mode defaults to reader_or_writer)",
            RdsUrlType.RDS_CUSTOM_CLUSTER: f"the custom endpoint {rds.name!r}{where}: connections stay on "
            "its members (custom_endpoint_members, else the RDS API)",
            RdsUrlType.RDS_INSTANCE: f"the endpoint of instance {rds.name!r}{where}: it always leads to that "
            "instance (new connections after a failover do not follow the writer unless moved)",
        }.get(kind)
        if found is not None:
            source = f"cluster_instance_host_pattern {_pattern_text(config)!r}" if pattern else None
            instances = source or (f"instances at {rds.instance_template!r}" if rds.instance_template else "")
            status = Status.INFO if kind is RdsUrlType.RDS_INSTANCE else Status.OK
            self.add("host", status, f"{found}; {instances}".rstrip("; "), details=details)
            return
        what = "an IP address" if kind is RdsUrlType.IP_ADDRESS else "not an RDS host name"
        if pattern is not None:
            summary = f"{what}: instances through cluster_instance_host_pattern {_pattern_text(config)!r}"
        else:
            summary = (
                f"{what}: an Aurora cluster's instances need cluster_instance_host_pattern to be reached"
            )
        self.add("host", Status.OK, summary, details=details)

    async def check_dns(self, config: Config) -> bool:
        """The given host's addresses; False when it does not resolve."""
        host = config.host
        if is_local_socket(host):
            self.add("dns", Status.SKIP, "a local Unix socket: no DNS")
            return True
        if classify_host(host).url_type is RdsUrlType.IP_ADDRESS:
            self.add("dns", Status.OK, f"{host} is an IP address: no DNS", addresses=[host])
            return True
        addresses, error = await self.resolve(host, config.port)
        if error is not None:
            self.add(
                "dns",
                Status.FAIL,
                f"{host} does not resolve: {error}",
                "check the host name; RDS endpoints of a private cluster resolve only inside its VPC "
                "(or through its DNS resolver)",
            )
            return False
        private = [a for a in addresses if _is_private(a)]
        note = (
            " (private: reachable from inside the VPC only)"
            if private and len(private) == len(addresses)
            else ""
        )
        self.add("dns", Status.OK, f"{host} resolves to {', '.join(addresses)}{note}", addresses=addresses)
        return True

    async def resolve(self, host: str, port: int) -> tuple[list[str], str | None]:
        """The addresses of ``host`` (asyncio's getaddrinfo, within the step's deadline), or the error."""
        if classify_host(host).url_type is RdsUrlType.IP_ADDRESS:
            return [host], None
        loop = asyncio.get_running_loop()
        try:
            infos = await self.step(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except TimeoutError:
            return [], f"no answer within {self.timeout:g} s"
        except OSError as exc:
            return [], str(exc.strerror or exc)
        return list(dict.fromkeys(str(info[4][0]) for info in infos)), None

    async def check_credentials(self, config: Config) -> bool:
        source = config.identity.credentials
        if source is None:
            return True
        try:
            creds, _ = await self.step(self.auth.credentials(source, config.host, config.port))
        except TimeoutError:
            self.add(
                "credentials",
                Status.FAIL,
                f"{_source_text(source)}: no answer from AWS within {self.timeout:g} s",
                "check that this machine reaches the AWS endpoint (a VPC endpoint, or NAT from a private "
                "subnet)",
            )
            return False
        except CredentialsError as exc:
            if isinstance(source, IamSource):
                fix = (
                    "give this process AWS credentials (AWS_PROFILE, the environment, an instance or task "
                    "role) allowed rds-db:connect for the database user"
                )
            else:
                fix = (
                    "check secrets_manager_secret_id and its region, and that these AWS credentials may "
                    "secretsmanager:GetSecretValue on it"
                )
            self.add("credentials", Status.FAIL, f"{_source_text(source)}: {exc}", fix)
            return False
        if isinstance(source, IamSource):
            token_host = source.host or config.host
            token_port = source.port or config.port
            summary = (
                f"IAM token generated for {source.user}@{token_host}:{token_port} in {source.region} "
                f"({len(creds.password)} characters, not shown)"
            )
        else:
            summary = (
                f"secret {source.secret_id!r} fetched ({source.region}): user {creds.user!r}, "
                "password not shown"
            )
        self.add("credentials", Status.OK, summary, kind=source.kind)
        return True

    async def check_login(self, config: Config) -> Any:
        identity, driver = config.identity, config.driver
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            conn = await self.step(driver.open(identity, config.host, config.port, self.timeout, self.auth))
        except self.errors(config) as exc:
            self.add(
                "login", Status.FAIL, _connect_failure(config, exc, self.timeout), _login_fix(config, exc)
            )
            return None
        took = (loop.time() - started) * 1000
        self.add(
            "login",
            Status.OK,
            f"logged in as {_login_user(config)} at {config.host}:{config.port} in {took:.0f} ms; "
            f"server {_server_version(config.engine, conn)}",
            connect_ms=round(took, 1),
        )
        return conn

    async def check_tls(self, config: Config, conn: Any) -> None:
        if is_local_socket(config.host):
            self.add("tls", Status.SKIP, "a local Unix socket: no TLS needed")
            return
        level = config.identity.tls
        if config.engine == "postgresql":
            user = config.identity.user
            if isinstance(config.identity.credentials, SecretSource):
                user = None  # the secret names the user
            server = await pg_server_tls(config.host, config.port, user, config.database, self.timeout)
        else:
            server = await mysql_server_tls(config.host, config.port, self.timeout)
        session = negotiated_tls(conn) if conn is not None else None
        if conn is not None and session is None and server.accepts_plaintext is None:
            server = ServerTls(server.offers_tls, True)  # it just took a plain-text login
        details: dict[str, Any] = {
            "settings": level.label,
            "negotiated": session.version() if session is not None else None,
            "cipher": _cipher(session),
            "verified": session is not None and level >= Tls.VERIFIED_CA,
            "server_offers_tls": server.offers_tls,
            "server_accepts_plaintext": server.accepts_plaintext,
        }
        offers = _yes_no(server.offers_tls)
        plain = _yes_no(server.accepts_plaintext)
        facts = f"server offers TLS: {offers}; accepts plain text: {plain}"
        secret = _secret_kind(config)
        if session is not None:
            what = f"{session.version()} {details['cipher'] or ''}".strip()
            if level >= Tls.VERIFIED_CA:
                how = (
                    "certificate and host name verified"
                    if level is Tls.VERIFIED
                    else "CA verified, host name not"
                )
                self.add("tls", Status.OK, f"{what}, {how}; {facts}", details=details)
                return
            carried = f"; the {secret} travels over it" if secret else ""
            self.add(
                "tls",
                Status.WARN,
                f"{what}, certificate NOT verified ({level.label}){carried}; {facts}",
                _VERIFY_FIXES[config.engine],
                details=details,
            )
            return
        if conn is None and level >= Tls.ENCRYPTED:
            self.add(
                "tls",
                Status.INFO,
                f"settings: {level.label} (not negotiated: no login); {facts}",
                details=details,
            )
            return
        verify = _VERIFY_FIXES[config.engine]
        if conn is None and level is Tls.OPPORTUNISTIC and server.offers_tls:
            carried = f"; the {secret} would travel over it" if secret else ""
            state = f"settings: {level.label} (it does): encrypted, certificate NOT verified{carried}"
            self.add("tls", Status.WARN, f"{state}; {facts}", verify, details=details)
            return
        if conn is None and level is Tls.OPPORTUNISTIC and server.offers_tls is None:
            state = f"settings: {level.label}, never verified"
            self.add("tls", Status.WARN, f"{state}; {facts}", verify, details=details)
            return
        carried = f"; the {secret} travels in clear text" if secret else ""
        if server.offers_tls is False:
            fix = (
                "turn TLS on at the server (every RDS and Aurora server has it) and verify it from the client"
            )
        else:
            fix = f"turn TLS on and {verify}"
        state = "plain text (no TLS)" if conn is not None else f"settings: {level.label}"
        self.add("tls", Status.WARN, f"{state}{carried}; {facts}", fix, details=details)

    async def check_dialect(self, config: Config, conn: Any) -> Dialect | None:
        driver, forced = config.driver, config.options.wrapper_dialect
        try:
            if forced:
                dialect = driver.dialects[forced]()
            else:
                dialect = await self.step(driver.detect_dialect(conn, self.timeout))
        except self.errors(config) as exc:
            notes = " ".join(getattr(exc, "__notes__", ()))
            self.add(
                "dialect",
                Status.FAIL,
                f"detection failed: {type(exc).__name__}: {exc} {notes}".strip(),
                "grant the user read access to the catalog the message names, or set wrapper_dialect",
            )
            return None
        name = DIALECT_NAMES.get(dialect.code, dialect.code)
        how = "wrapper_dialect" if forced else "detected"
        single = is_local_socket(config.host) or behind_proxy(config.options, config.host)
        cluster_host = classify_host(config.host).url_type.is_rds_cluster
        if cluster_host and not dialect.has_topology and not single:
            self.add(
                "dialect",
                Status.WARN,
                f"{dialect.code} ({name}, {how}) through a cluster endpoint: no topology, so failover "
                "cannot find the other instances",
                "let the user read the cluster's catalog (aurora_replica_status(), rds_tools), or set "
                "wrapper_dialect to the cluster's dialect",
                code=dialect.code,
            )
        else:
            self.add("dialect", Status.OK, f"{dialect.code} ({name}, {how})", code=dialect.code)
        return dialect

    async def check_topology(
        self, config: Config, conn: Any, dialect: Dialect
    ) -> tuple[list[Instance], HostBuilder | None, str] | None:
        """The topology check; returns the instances, how addresses were built, and what built them."""
        timeout = self.timeout
        try:
            is_reader = await self.step(dialect.is_reader(conn, timeout))
            reached = _Reached(
                await self.step(dialect.instance_id(conn, timeout)), Role.READER if is_reader else Role.WRITER
            )
        except self.errors(config) as exc:
            self.add(
                "topology",
                Status.FAIL,
                f"could not ask the instance who it is: {exc}",
                "check the user's privileges",
            )
            return None
        if (
            is_local_socket(config.host)
            or behind_proxy(config.options, config.host)
            or not dialect.has_topology
        ):
            why = (
                "through an RDS Proxy: the proxy routes to the writer"
                if behind_proxy(config.options, config.host)
                else "a local Unix socket"
                if is_local_socket(config.host)
                else f"{dialect.code} has no topology"
            )
            rtt = await self.round_trip(config, conn)
            self.instances = [
                InstanceReport(
                    reached.instance_id,
                    reached.role.value,
                    config.host,
                    config.port,
                    (),
                    reached.instance_id,
                    rtt,
                )
            ]
            self.add(
                "topology",
                Status.INFO,
                f"one instance, {reached.role.value} ({why})",
                reached=reached.instance_id,
            )
            self.add("instance_pattern", Status.SKIP, f"no instances to reach directly ({why})")
            return None
        pattern = config.options.cluster_instance_host_pattern
        template = pattern.template if pattern is not None else classify_host(config.host).instance_template
        build: HostBuilder | None = host_builder(pattern, config.host, config.port)
        if pattern is not None:
            source = f"cluster_instance_host_pattern {_pattern_text(config)!r}"
        elif template is not None:
            source = f"the pattern {template!r} derived from the RDS host name"
        else:
            source = "the endpoint list of the catalog"
        if dialect.ids_only and template is None:
            build = None
        try:
            instances = await self.step(dialect.topology(conn, timeout, build or _listed_only(config)))
        except self.errors(config) as exc:
            self.add(
                "topology",
                Status.FAIL,
                f"could not read the topology: {exc}",
                "check the user may read the cluster's catalog",
            )
            return None
        if not instances:
            self.add(
                "topology",
                Status.FAIL,
                "the catalog names no writer: the topology is unusable",
                "retry when no failover is under way; if it persists, check the user may read the catalog",
            )
            return None
        writer = next((i.instance_id for i in instances if i.role is Role.WRITER), None)
        readers = [i.instance_id for i in instances if i.role is Role.READER]
        role_note = ""
        kind = classify_host(config.host).url_type
        if kind is RdsUrlType.RDS_WRITER_CLUSTER and reached.role is Role.READER:
            role_note = " (the writer endpoint led to a replica: stale DNS after a failover? connect() moves)"
        self.add(
            "topology",
            Status.OK,
            f"{len(instances)} instance(s): writer {writer}, readers {', '.join(readers) or 'none'}; "
            f"{config.host}:{config.port} reached {reached.instance_id} ({reached.role.value}){role_note}",
            writer=writer,
            readers=readers,
            reached=reached.instance_id,
        )
        return instances, build, source

    async def check_instances(
        self,
        config: Config,
        dialect: Dialect,
        instances: list[Instance],
        build: HostBuilder | None,
        source: str,
    ) -> None:
        """Reach every instance at the address the topology gives it and ask who answers."""
        if build is None:
            self.instances = [
                InstanceReport(i.instance_id, i.role.value, i.host or "?", i.port) for i in instances
            ]
            self.add(
                "instance_pattern",
                Status.FAIL,
                f"no address for the instances: {config.host!r} is an IP address or custom domain, and "
                "the catalog names instances by id only",
                "set cluster_instance_host_pattern to the instances' address with '?' for the instance id, "
                f"e.g. {_PATTERN_EXAMPLE}",
            )
            return
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.reach(config, dialect, i)) for i in instances]
        self.instances = [task.result() for task in tasks]
        wrong = [i for i in self.instances if i.answered_as is not None and not i.reached]
        silent = [i for i in self.instances if i.answered_as is None]
        reached = [i for i in self.instances if i.reached]
        if wrong:
            first = wrong[0]
            self.add(
                "instance_pattern",
                Status.FAIL,
                f"{source} leads to the wrong instance: {first.endpoint}, the address of "
                f"{first.instance_id!r}, answered as {first.answered_as!r}",
                "set cluster_instance_host_pattern so that '?' becomes each instance's id in that instance's "
                "own address; failover and host monitoring dial these addresses",
                wrong=[i.instance_id for i in wrong],
            )
        elif silent and not reached:
            first = silent[0]
            self.add(
                "instance_pattern",
                Status.FAIL,
                f"{source} leads nowhere: {first.instance_id!r} at {first.endpoint}: {first.error}",
                await self.nowhere_fix(config, dialect, first),
                unreachable=[i.instance_id for i in silent],
            )
        elif silent:
            names = ", ".join(f"{i.instance_id} at {i.endpoint} ({i.error})" for i in silent)
            self.add(
                "instance_pattern",
                Status.WARN,
                f"{source}: {len(reached)} instance(s) answer as themselves, but not {names}",
                "check that the instance is available and reachable from here (security group, network ACL): "
                "a failover to it would fail",
                unreachable=[i.instance_id for i in silent],
            )
        else:
            self.add(
                "instance_pattern",
                Status.OK,
                f"{source}: every instance answers as itself",
                pattern=_pattern_text(config) if config.options.cluster_instance_host_pattern else None,
            )

    async def reach(self, config: Config, dialect: Dialect, instance: Instance) -> InstanceReport:
        """Resolve, connect to, identify and time one instance."""
        base = InstanceReport(instance.instance_id, instance.role.value, instance.host, instance.port)
        addresses, error = await self.resolve(instance.host, instance.port)
        if error is not None:
            return _with(base, error=f"does not resolve: {error}")
        answered, rtt, error = await self.answers_as(config, dialect, instance.host, instance.port)
        return _with(base, addresses=tuple(addresses), answered_as=answered, rtt_ms=rtt, error=error)

    async def answers_as(
        self, config: Config, dialect: Dialect, host: str, port: int
    ) -> tuple[str | None, float | None, str | None]:
        """(instance id that answered at ``host:port``, best SELECT 1 in ms, error)."""
        driver = config.driver
        try:
            conn = await self.step(driver.open(config.identity, host, port, self.timeout, self.auth))
        except self.errors(config) as exc:
            return None, None, _connect_failure(config, exc, self.timeout)
        try:
            answered = await self.step(dialect.instance_id(conn, self.timeout))
            rtt = await self.round_trip(config, conn)
        except self.errors(config) as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        finally:
            discard(conn)
        return answered, rtt, None

    async def nowhere_fix(self, config: Config, dialect: Dialect, instance: InstanceReport) -> str:
        """The fix for a pattern that reaches no instance: a better port when one works, else the rule."""
        pattern = config.options.cluster_instance_host_pattern
        if pattern is not None and pattern.port is not None and pattern.port != config.port:
            answered, _, _ = await self.answers_as(config, dialect, instance.host, config.port)
            if answered == instance.instance_id:
                return (
                    f"the pattern's port {pattern.port} is wrong: set cluster_instance_host_pattern to "
                    f"'{pattern.template}:{config.port}' (or leave the port out: it defaults to the "
                    "endpoint's)"
                )
        return (
            "set cluster_instance_host_pattern to the address each instance answers at, with '?' for its id, "
            f"e.g. {_PATTERN_EXAMPLE} (the port defaults to the endpoint's)"
        )

    async def round_trip(self, config: Config, conn: Any) -> float | None:
        """The best of three ``SELECT 1`` round trips on ``conn``, in milliseconds."""
        loop = asyncio.get_running_loop()
        best: float | None = None
        for _ in range(3):
            started = loop.time()
            try:
                await self.step(_select_one(config.engine, conn, self.timeout))
            except self.errors(config):
                return best
            took = (loop.time() - started) * 1000
            best = took if best is None else min(best, took)
        return round(best, 2) if best is not None else None

    async def check_blue_green(self, config: Config, conn: Any, dialect: Dialect) -> None:
        multi_az = dialect.code.startswith("multi-az")
        try:
            found = await self.step(_blue_green_metadata(config.engine, conn, self.timeout))
        except self.errors(config) as exc:
            self.add("blue_green", Status.INFO, f"could not tell: {type(exc).__name__}: {exc}")
            return
        if not found:
            self.add("blue_green", Status.INFO, "no Blue/Green deployment metadata", present=False)
            return
        note = " (also the Multi-AZ cluster's own topology catalog)" if multi_az else ""
        self.add(
            "blue_green",
            Status.INFO,
            f"Blue/Green metadata present: {', '.join(found)}{note}; aurora_async has no Blue/Green "
            "plugin, so a switchover looks like a failover to it",
            present=True,
            sources=found,
        )


# -- helpers ------------------------------------------------------------------------------------------


async def _select_one(engine: str, conn: Any, timeout: float) -> None:
    if engine == "mysql":
        from ..mysql.dialects import fetch_rows  # noqa: PLC0415 - engine modules load with their driver

        await fetch_rows(conn, "SELECT 1", timeout)
    else:
        await conn.execute("SELECT 1", timeout=timeout)  # simple protocol: one round trip, nothing prepared


async def _blue_green_metadata(engine: str, conn: Any, timeout: float) -> list[str]:
    """Which Blue/Green metadata the server has (the AWS wrapper's existence checks)."""
    if engine == "mysql":
        from ..mysql.dialects import fetch_rows  # noqa: PLC0415

        rows = await fetch_rows(
            conn,
            "SELECT 1 AS tmp FROM information_schema.tables WHERE table_schema = 'mysql' AND "
            "table_name = 'rds_topology'",
            timeout,
        )
        return ["mysql.rds_topology"] if rows else []
    import asyncpg  # noqa: PLC0415

    found = []
    for name in ("pg_catalog.get_blue_green_fast_switchover_metadata", "rds_tools.show_topology"):
        try:
            await conn.fetchval(f"SELECT '{name}'::regproc", timeout=timeout)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "42725":  # "more than one function named": it exists (overloaded)
                found.append(name)
            elif exc.sqlstate not in ("42883", "3F000", "42704"):
                raise
        else:
            found.append(name)
    return found


def _listed_only(config: Config) -> HostBuilder:
    """Addresses for a topology read without any pattern: what the catalog lists, else nothing."""

    def build(instance_id: str, endpoint: str | None, port: int | None) -> tuple[str, int]:
        return endpoint or "", port or config.port

    return build


def _with(base: InstanceReport, **changes: Any) -> InstanceReport:
    return replace(base, **changes)


def _pattern_text(config: Config) -> str:
    pattern = config.options.cluster_instance_host_pattern
    if pattern is None:
        return ""
    return pattern.template + ("" if pattern.port is None else f":{pattern.port}")


def _source_text(source: CredentialSource) -> str:
    if isinstance(source, IamSource):
        return f"IAM token for {source.user} in {source.region}"
    return f"secret {source.secret_id!r} in {source.region}"


def _secret_kind(config: Config) -> str | None:
    source = config.identity.credentials
    if isinstance(source, IamSource):
        return "IAM token"
    if isinstance(source, SecretSource):
        return "Secrets Manager password"
    return "password" if config.password else None


def _login_user(config: Config) -> str:
    source = config.identity.credentials
    if isinstance(source, SecretSource):
        return "the secret's user"
    return config.user or "the default user"


def _server_version(engine: str, conn: Any) -> str:
    try:
        if engine == "mysql":
            return str(conn.get_server_info())
        return f"PostgreSQL {conn.get_settings().server_version}"
    except Exception:  # a version is a courtesy: never a reason to fail
        return "version unknown"


def _connect_failure(config: Config, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if config.driver.is_login_error(exc):
        return f"the server refused the login: {exc}"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS failed: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _login_fix(config: Config, exc: BaseException) -> str:
    source = config.identity.credentials
    if isinstance(exc, CredentialsError):
        return "fix the credentials source (see the credentials check)"
    if isinstance(exc, TimeoutError):
        return (
            f"check that the security group and network ACL let this machine reach "
            f"{config.host}:{config.port}, and that the instance is available"
        )
    if config.driver.is_login_error(exc):
        if isinstance(source, IamSource):
            return (
                "enable IAM login for the user (PostgreSQL: GRANT rds_iam TO it; MySQL: IDENTIFIED WITH "
                "AWSAuthenticationPlugin) and allow rds-db:connect for it in the caller's IAM policy"
            )
        if isinstance(source, SecretSource):
            return "make the secret's password the database user's (a rotation that did not finish?)"
        return "check the user name and password (percent-encode : / ? # @ % in a DSN's password)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "give the CA that signed the server's certificate (the RDS global bundle, global-bundle.pem)"
    if isinstance(exc, ConnectionRefusedError):
        return f"check the port ({config.port}) and that the database is running there"
    if isinstance(exc, OSError):
        return (
            f"check that the security group and network ACL let this machine reach "
            f"{config.host}:{config.port}, and that the instance is available"
        )
    return "read the server's message above: the database, user or server settings it names"


def _cipher(session: ssl.SSLObject | None) -> str | None:
    described = session.cipher() if session is not None else None
    return described[0] if described else None


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _is_private(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_private
    except ValueError:
        return False


def _given_secrets(dsn: str | None, options: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    password = options.get("password")
    if isinstance(password, str):
        found.add(password)
    if isinstance(dsn, str):
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return found
        netloc = parts.netloc
        if "@" in netloc:
            userinfo = netloc.rsplit("@", 1)[0]
            if ":" in userinfo:
                raw = userinfo.split(":", 1)[1]
                found.update({raw, unquote(raw)})
    return found


def _masked_dsn(dsn: str | None, options: dict[str, Any]) -> str:
    """The DSN with its password as ``***`` (or the host and port options when there is no DSN)."""
    if not isinstance(dsn, str):
        host, port = options.get("host", "?"), options.get("port")
        return f"{host}:{port}" if port else str(host)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<a DSN that is not a valid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))
