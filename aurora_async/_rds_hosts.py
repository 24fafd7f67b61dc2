"""Amazon RDS host names: what kind of endpoint a host is, and how instance hosts are built."""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from dataclasses import dataclass

from ._exceptions import ConfigurationError

_PREFIXES = r"(?P<dns>proxy-|cluster-ro-|cluster-custom-|cluster-|shardgrp-|global-)?"
_PATTERNS = [
    # standard partitions: name.[prefix]id.region.rds.amazonaws.com
    re.compile(
        rf"^(?P<name>.+?)\.{_PREFIXES}(?P<domain>[a-z0-9]+\.(?P<region>[a-z0-9\-]+)\.rds\.amazonaws\.com)$",
        re.I,
    ),
    # China: name.[prefix]id.rds.region.amazonaws.com.cn, and the older ...id.region.rds.amazonaws.com.cn
    re.compile(
        rf"^(?P<name>.+?)\.{_PREFIXES}(?P<domain>[a-z0-9]+\.rds\.(?P<region>[a-z0-9\-]+)\.amazonaws\.com\.cn)$",
        re.I,
    ),
    re.compile(
        rf"^(?P<name>.+?)\.{_PREFIXES}(?P<domain>[a-z0-9]+\.(?P<region>[a-z0-9\-]+)\.rds\.amazonaws\.com\.cn)$",
        re.I,
    ),
    # GovCloud, isolated partitions: name.[prefix]id.rds.region.(amazonaws.com|c2s.ic.gov|sc2s.sgov.gov)
    re.compile(
        rf"^(?P<name>.+?)\.{_PREFIXES}(?P<domain>[a-z0-9]+\.rds\.(?P<region>[a-z0-9\-]+)\."
        r"(?:amazonaws\.com|c2s\.ic\.gov|sc2s\.sgov\.gov))$",
        re.I,
    ),
]


class RdsUrlType(enum.Enum):
    RDS_WRITER_CLUSTER = "cluster-"
    RDS_READER_CLUSTER = "cluster-ro-"
    RDS_CUSTOM_CLUSTER = "cluster-custom-"
    RDS_PROXY = "proxy-"
    RDS_AURORA_LIMITLESS_DB_SHARD_GROUP = "shardgrp-"
    RDS_GLOBAL_WRITER_CLUSTER = "global-"
    RDS_INSTANCE = "instance"
    IP_ADDRESS = "ip"
    OTHER = "other"

    @property
    def is_rds(self) -> bool:
        return self not in (RdsUrlType.IP_ADDRESS, RdsUrlType.OTHER)

    @property
    def is_rds_cluster(self) -> bool:
        return self in _CLUSTERS

    @property
    def has_region(self) -> bool:
        return self.is_rds and self is not RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER


_CLUSTERS = frozenset(
    {
        RdsUrlType.RDS_WRITER_CLUSTER,
        RdsUrlType.RDS_READER_CLUSTER,
        RdsUrlType.RDS_CUSTOM_CLUSTER,
        RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER,
    }
)
_BY_PREFIX = {t.value: t for t in RdsUrlType if t.value.endswith("-")}


@dataclass(frozen=True)
class RdsHost:
    """A classified host: ``name`` is the cluster name (cluster endpoints) or the instance id;
    ``region`` is None where the name has none (an Aurora Global Database's global writer endpoint,
    ``<name>.global-<id>.global.rds.amazonaws.com``, whose label in that place is "global")."""

    host: str
    url_type: RdsUrlType
    name: str | None = None
    domain: str | None = None
    region: str | None = None

    @property
    def instance_template(self) -> str | None:
        """``?.<domain>``: where instances of this RDS host's cluster live; None outside RDS, and for a
        global writer endpoint, whose instances live in each region's own domain."""
        if not self.url_type.has_region or not self.domain:
            return None
        return f"?.{self.domain}"


@functools.lru_cache(maxsize=1024)
def classify_host(host: str) -> RdsHost:
    """What kind of endpoint ``host`` is (cluster writer / reader / custom, proxy, instance, ...)."""
    text = host.strip()
    bracketed = text.startswith("[") and text.endswith("]")  # only an IPv6 literal may be
    if bracketed:
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return RdsHost(host, RdsUrlType.IP_ADDRESS)
    text = text.removesuffix(".")  # a fully qualified name: "db.example.com."
    if bracketed or not text:
        return RdsHost(host, RdsUrlType.OTHER)
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if match:
            prefix = (match.group("dns") or "").lower()
            url_type = _BY_PREFIX.get(prefix, RdsUrlType.RDS_INSTANCE)
            region = match.group("region") if url_type.has_region else None
            return RdsHost(host, url_type, match.group("name"), match.group("domain"), region)
    return RdsHost(host, RdsUrlType.OTHER)


@dataclass(frozen=True)
class HostPattern:
    """A parsed ``cluster_instance_host_pattern``: ``?`` stands for an instance id."""

    template: str
    port: int | None = None

    def host_for(self, instance_id: str) -> str:
        return self.template.replace("?", instance_id)

    @classmethod
    def parse(cls, pattern: str) -> HostPattern:
        def bad(why: str) -> ConfigurationError:
            return ConfigurationError(
                f"cluster_instance_host_pattern {pattern!r} {why}; expected a host name or IPv4 address "
                "with '?' where the instance id goes, optionally with ':port', e.g. "
                "'?.abcdefgh.us-east-1.rds.amazonaws.com' or '10.0.0.?:5432'"
            )

        text = pattern.strip()
        if not text or any(c.isspace() for c in text):
            raise bad("is empty or contains white space")
        if "[" in text or text.count(":") > 1:
            raise bad("looks like an IPv6 literal, which is not supported")
        template, port = text, None
        if ":" in text:
            template, _, port_text = text.rpartition(":")
            if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
                raise bad(f"has a bad port {port_text!r}")
            if not 0 < int(port_text) < 65536:
                raise bad(f"has a bad port {port_text!r}")
            port = int(port_text)
        if "?" not in template:
            raise bad("has no '?'")
        if "," in template or "/" in template:  # what host= refuses: host lists, Unix socket paths
            raise bad("contains ',' or '/'")
        kind = classify_host(template.replace("?", "instance")).url_type
        if kind is RdsUrlType.RDS_PROXY:
            raise bad("cannot point at an RDS Proxy endpoint")
        if kind is RdsUrlType.RDS_CUSTOM_CLUSTER:
            raise bad("cannot point at a custom cluster endpoint")
        return cls(template, port)
