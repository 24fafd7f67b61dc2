"""IAM database users on the MariaDB servers: the login Aurora MySQL's ``AWSAuthenticationPlugin``
performs, with MariaDB's PAM plugin in its place.

On Aurora an IAM user is ``IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'``: the server asks the client
to switch to ``mysql_clear_password``, the client sends its IAM token as it is (so only over TLS),
and the server accepts it when it is a valid signature for that user. Here:

- every server loads ``auth_pam_v1`` with ``pam_use_cleartext_plugin=ON``, so for a PAM user the
  server asks the client for ``mysql_clear_password`` in the same way, and hands the clear text to PAM;
- an IAM user is ``IDENTIFIED VIA pam USING 'aurora_async_sim_iam'`` (and ``REQUIRE SSL`` on a TLS
  cluster); the PAM service ``/etc/pam.d/aurora_async_sim_iam`` (written by the simulator, as root,
  the same for every simulator) runs ``pam_exec expose_authtok`` with ``/bin/sh aurora_sim_iam.sh``:
  a script in every data directory, which is the server's working directory;
- the script accepts the password when it is the token the simulator last installed for that user
  (``set_password``; ``RehearsalSession`` installs every token it generates) and appends one line per
  attempt to ``iam/attempts.log`` in the simulator's directory: instance, user, verdict and the
  password's length, never the password.

Limits against Aurora: the server does not check a signature, it compares with the one token
installed (so an older token is refused at once, not only after its 15 minutes, and a token is not
tied to the host it was signed for unless the test installs it so); ``pam_exec`` passes at most 511
bytes of a password, so a token longer than that (a long session token) cannot be installed; the
PAM plugin runs PAM inside the server as its OS user (``auth_pam_v1``: MariaDB's v2 needs a setuid
helper).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .._errors import SimulatorError
from .._process import OsUser
from ._catalog import account, sql_string

PAM_SERVICE = "aurora_async_sim_iam"
PAM_DIRECTORY = Path("/etc/pam.d")
CHECK_SCRIPT = "aurora_sim_iam.sh"  # in every data directory
MAX_TOKEN_BYTES = 511  # pam_exec's expose_authtok passes the first PAM_MAX_RESP_SIZE - 1 bytes
PAM_PLUGIN = "auth_pam_v1"

PAM_SERVICE_TEXT = f"""\
# aurora_async's local Aurora simulator (aurora_async.testing): IAM users of its MariaDB servers.
# Written by the simulator; harmless to delete (it is written again when needed).
auth required pam_exec.so expose_authtok quiet /bin/sh {CHECK_SCRIPT}
account required pam_permit.so
"""

_CHECK_SCRIPT_TEXT = """\
#!/bin/sh
# aurora_async simulator: one IAM login attempt. Run by PAM (pam_exec expose_authtok) in the server's
# data directory with the password on stdin; accepts it when it is the current token of $PAM_USER.
# Logs instance, user, verdict and the password's length; never the password.
iam={iam}
password=$(tr -d '\\000')
instance=$(basename "$(dirname "$(pwd)")")
instance=${{instance#instance-}}
verdict=refused
case "$PAM_USER" in
  */* | .* | '') ;;
  *)
    if [ -f "$iam/tokens/$PAM_USER" ] && [ -n "$password" ] \\
      && [ "$password" = "$(cat "$iam/tokens/$PAM_USER")" ]; then
      verdict=accepted
    fi
    ;;
esac
printf '%s %s %s %s\\n' "$instance" "$PAM_USER" "$verdict" "${{#password}}" >> "$iam/attempts.log"
[ "$verdict" = accepted ]
"""

_USER_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")


@dataclass(frozen=True)
class IamLoginAttempt:
    """A password that reached a server's IAM check in clear text (the PAM script saw it)."""

    instance_id: str
    user: str
    accepted: bool
    length: int  # of the password received


def ensure_pam_service(directory: Path = PAM_DIRECTORY) -> None:
    """Write the PAM service the IAM users log in through, unless it is there already as it should
    be; only root can."""
    path = directory / PAM_SERVICE
    try:
        if path.read_text() == PAM_SERVICE_TEXT:
            return
    except OSError:
        pass
    if os.geteuid() != 0:
        raise SimulatorError(
            f"IAM users on the MySQL simulator log in through the PAM service {str(path)!r}, which is "
            "missing or out of date, and only root can write it. Run the simulator once as root, or "
            f"write it yourself with this content:\n{PAM_SERVICE_TEXT}"
        )
    temporary = path.with_name(f".{PAM_SERVICE}.{os.getpid()}")
    temporary.write_text(PAM_SERVICE_TEXT)
    temporary.chmod(0o644)
    os.replace(temporary, path)


class IamUsers:
    """The IAM users of one simulated cluster: their tokens and the attempts log (in ``root``)."""

    def __init__(self, root: Path, user: OsUser) -> None:
        self.root = root
        self.tokens = root / "tokens"
        self.log = root / "attempts.log"
        self.user = user
        self.users: set[str] = set()

    def prepare(self, datadir: Path) -> None:
        """The token directory, the log and the check script in ``datadir`` (the template's, which
        every instance's data directory copies)."""
        for directory in (self.root, self.tokens):
            directory.mkdir(mode=0o755, exist_ok=True)
            self.user.chown(directory)
        self.log.touch(mode=0o644)
        self.user.chown(self.log)
        script = datadir / CHECK_SCRIPT
        script.write_text(_CHECK_SCRIPT_TEXT.format(iam=_shell_quote(str(self.root))))
        script.chmod(0o644)
        self.user.chown(script)

    def create_sql(self, user: str, *, require_tls: bool) -> list[str]:
        """The statements that make ``user`` an IAM user (run on the writer; they replicate)."""
        if not _USER_NAME.match(user):
            raise SimulatorError(f"IAM user names here are letters, digits and '_' (up to 32), not {user!r}")
        self.users.add(user)
        who = account(user)
        return [
            f"DROP USER IF EXISTS {who}",
            f"CREATE USER {who} IDENTIFIED VIA pam USING {sql_string(PAM_SERVICE)}"
            + (" REQUIRE SSL" if require_tls else ""),
        ]

    def set_token(self, user: str, token: str) -> None:
        """From now on ``token`` (and only it) logs ``user`` in."""
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise SimulatorError(
                f"a token of {len(token.encode())} bytes cannot be checked: PAM's pam_exec passes the "
                f"simulator at most {MAX_TOKEN_BYTES} bytes of a password (use short AWS session tokens)"
            )
        temporary = self.tokens / f".{user}.new"
        temporary.write_text(token)
        temporary.chmod(0o644)
        self.user.chown(temporary)
        os.replace(temporary, self.tokens / user)

    def attempts(self) -> list[IamLoginAttempt]:
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            instance_id, user, verdict, length = line.split(" ")
            found.append(IamLoginAttempt(instance_id, user, verdict == "accepted", int(length)))
        return found


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
