"""Who a connection is, and which identity the library's own background connections borrow.

An :class:`Identity` is everything a physical connection is opened with: user, password or credential
source (IAM, Secrets Manager), database, TLS, the driver's connect arguments (``server_settings``,
MySQL ``autocommit``, ...), the connect deadline. Every physical connection opened for an application
connection, at connect and at failover, uses that connection's own identity.

A cluster is shared by connections of many identities. Its background work (topology monitor, writer
search, host probes) opens connections too, and borrows a live identity for them
(:meth:`Identities.for_background`): the strongest TLS among the identities it serves, so it is
never weaker than any of them; among those, the one whose login last worked; when the server refuses
that login (a rotated password), the next; and when every identity with the strongest TLS is refused,
another identity's login over the strongest identity's TLS settings.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._auth import CredentialSource
from ._tls import Tls


class LoginRefused(Exception):
    """The server refused a login (the connection's own, or every one the cluster's own work could
    borrow): the password or credential source no longer works, and waiting for a deadline would not
    change that. ``__cause__`` is the driver's error."""


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for a connect argument: by value where it has one, else by identity."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, eq=False)
class Identity:
    """Who a connection is (see the module docstring). Secrets never appear in its ``repr``."""

    engine: str
    user: str | None
    password: str | None = field(repr=False)
    database: str | None
    driver_kwargs: Mapping[str, Any] = field(repr=False)
    dsn: str | None = field(repr=False)  # the rest of the caller's DSN, for asyncpg
    credentials: CredentialSource | None
    connect_timeout: float
    tls: Tls
    # a connect on a host that accepts TCP but stays silent (maybe resuming) may take this long in all
    resume_timeout: float = 0.0
    fingerprint: Hashable = field(init=False, repr=False)
    login: Hashable = field(init=False, repr=False)  # whose login: user and password or their source

    def __post_init__(self) -> None:
        login = (self.engine, self.user, self.password, self.credentials)
        fingerprint = (
            login,
            self.database,
            self.dsn,
            self.connect_timeout,
            self.resume_timeout,
            self.tls,
            _frozen(self.driver_kwargs),
        )
        object.__setattr__(self, "login", login)
        object.__setattr__(self, "fingerprint", fingerprint)

    def __repr__(self) -> str:
        who = self.user or "?"
        via = f" via {self.credentials.kind}" if self.credentials is not None else ""
        return f"<Identity {who}@{self.database or '?'}{via}, {self.tls.label}>"

    def with_login_of(self, other: Identity) -> Identity:
        """These connect settings (TLS and all) with ``other``'s user and password (or their source)."""
        return dataclasses.replace(
            self, user=other.user, password=other.password, credentials=other.credentials
        )


class Identities:
    """The identities a cluster's connections have now, counted, with what their logins did lately."""

    def __init__(self) -> None:
        self._live: dict[Hashable, tuple[Identity, int, int]] = {}  # fingerprint -> (identity, refs, seq)
        self._seq = itertools.count()
        self._logged_in: dict[Hashable, int] = {}  # login -> order of its last accepted login
        self._refused: dict[Hashable, int] = {}  # login -> order of its last refused login
        self._events = itertools.count(1)

    def __len__(self) -> int:
        return len(self._live)

    def __repr__(self) -> str:
        return f"<Identities {len(self._live)} live, strongest {self.strongest().label}>"

    def add(self, identity: Identity) -> None:
        known = self._live.get(identity.fingerprint)
        if known is None:
            self._live[identity.fingerprint] = (identity, 1, next(self._seq))
        else:
            self._live[identity.fingerprint] = (known[0], known[1] + 1, known[2])

    def remove(self, identity: Identity) -> None:
        known = self._live.get(identity.fingerprint)
        if known is None:
            return
        if known[1] <= 1:
            del self._live[identity.fingerprint]
        else:
            self._live[identity.fingerprint] = (known[0], known[1] - 1, known[2])

    def strongest(self) -> Tls:
        return max((entry[0].tls for entry in self._live.values()), default=Tls.NONE)

    def logged_in(self, identity: Identity) -> None:
        self._logged_in[identity.login] = next(self._events)

    def refused(self, identity: Identity) -> None:
        self._refused[identity.login] = next(self._events)

    def refused_lately(self, identity: Identity) -> bool:
        """Whether the server refused ``identity``'s login since it last accepted it."""
        return self._refused.get(identity.login, 0) > self._logged_in.get(identity.login, 0)

    def for_background(self) -> list[Identity]:
        """Identities to try, in order, for one of the library's own connections (module docstring)."""

        def preference(entry: tuple[Identity, int, int]) -> tuple[bool, int, int]:
            identity, _refs, seq = entry
            return (
                self.refused_lately(identity),
                -self._logged_in.get(identity.login, 0),
                -seq,
            )  # not lately refused, then last accepted, then newest

        entries = sorted(self._live.values(), key=preference)
        top = self.strongest()
        strongest = [e[0] for e in entries if e[0].tls == top]
        if not strongest:
            return []
        logins = {i.login for i in strongest}
        others: list[Identity] = []
        for identity, _refs, _seq in entries:
            if identity.tls < top and identity.login not in logins:
                logins.add(identity.login)
                others.append(strongest[0].with_login_of(identity))
        unique: dict[Hashable, Identity] = {}
        for identity in strongest:
            unique.setdefault(identity.login, identity)
        return [*unique.values(), *others]
