"""The simulator's throw-away certificate authority: one server certificate for every address of a
cluster, so clients can verify the servers fully (certificate and host name) against ``ca.crt``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._process import OsUser, run_command


async def make_certificate(directory: Path, addresses: Sequence[str], user: OsUser) -> None:
    """``ca.crt`` (a CA made for this cluster, its key deleted at once) and ``server.crt`` /
    ``server.key`` signed by it for ``localhost`` and every address in ``addresses`` (the endpoints
    and every instance address the cluster could ever use), in ``directory``, owned by the server
    user (PostgreSQL insists on owning its key)."""
    _prepare(directory, addresses, user)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [
            "openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=aurora-simulator-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", "ca.key", "-out", "ca.crt",
        ],
        [
            "openssl", "req", *ec, "-subj", "/CN=aurora-simulator",
            "-keyout", "server.key", "-out", "server.csr",
        ],
        [
            "openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
        ],
    ]  # fmt: skip
    for argv in commands:
        await run_command(argv, user=user, timeout=60, cwd=directory)
    _finish(directory)


def _prepare(directory: Path, addresses: Sequence[str], user: OsUser) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    user.chown(directory)
    names = ",".join(["DNS:localhost", *(f"IP:{a}" for a in addresses)])
    (directory / "server.ext").write_text(
        f"subjectAltName={names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )


def _finish(directory: Path) -> None:
    (directory / "server.key").chmod(0o600)
    (directory / "ca.key").unlink()
