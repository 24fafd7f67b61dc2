"""Where simulated clusters keep their data, and how directories of dead simulators are swept."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .._errors import SimulatorError
from .._process import OsUser

_PREFIX = "aurora-sim-"
_SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes; leave room for ".s.PGSQL.<port>"


def choose_base_dir(requested: str | os.PathLike[str] | None) -> Path:
    """``requested``, else ``$AURORA_SIM_BASE_DIR``, else ``/dev/shm`` when it is writable with room to
    spare (servers start several times faster in memory), else the system temp dir."""
    if requested is not None:
        return Path(requested)
    from_env = os.environ.get("AURORA_SIM_BASE_DIR")
    if from_env:
        return Path(from_env)
    shm = Path("/dev/shm")
    try:
        roomy = shutil.disk_usage(shm).free > 2 << 30
    except OSError:
        roomy = False
    if roomy and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def make_root(base: Path, owner: OsUser) -> Path:
    """A fresh directory for one simulator, named after this process so that it can be swept."""
    root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
    root.chmod(0o755)
    owner.chown(root)
    if len(str(root)) + 40 > _SOCKET_PATH_LIMIT:
        shutil.rmtree(root, ignore_errors=True)
        raise SimulatorError(f"base_dir {base} is too long for Unix socket paths; use a shorter one")
    return root


def sweep_stale_dirs(base: Path) -> None:
    """Delete simulator directories left by processes that died without cleaning up."""
    for path in base.glob(f"{_PREFIX}*-*"):
        match = re.match(rf"{_PREFIX}(\d+)-", path.name)
        if not match or not path.is_dir() or _alive(int(match.group(1))):
            continue
        pidfiles = [
            pidfile
            for instance in path.glob("instance-*")
            for pidfile in (instance / "data" / "postmaster.pid", instance / "mariadbd.pid")
        ]
        if any(_alive(_pid_from(p)) for p in pidfiles if p.exists()):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _pid_from(pidfile: Path) -> int:
    try:
        return int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
