"""Data directories made once per machine and copied after: ``initdb`` takes about half a second, a copy
of its result about a twentieth. A template lives beside the simulators' own directories, named after a
key of everything that shaped it (the tool, its version on disk, its arguments, the account), so a new
server version or other arguments make a new one; it is put in place by a rename, so a half-made
template is never used, and two processes making the same one at once both succeed."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ._process import OsUser, run_command

PREFIX = "aurora-sim-template-"
_COPY_TIMEOUT = 120.0


def template_key(tool: str, argv: Sequence[str], user: OsUser) -> str:
    """A short name for what ``tool argv`` makes as ``user`` (the tool's size and mtime stand for its
    version)."""
    stat = os.stat(tool)
    facts = [tool, str(stat.st_size), str(stat.st_mtime_ns), repr(list(argv)), repr(user)]
    return hashlib.sha256("\0".join(facts).encode()).hexdigest()[:16]


async def fill_from_template(
    target: Path, *, base: Path, key: str, user: OsUser, make: Callable[[Path], Awaitable[None]]
) -> None:
    """Fill ``target`` (which must not exist) with a copy of template ``key`` under ``base``; when there
    is none yet, ``make(target)`` and keep a copy of the result as the template."""
    template = base / f"{PREFIX}{key}"
    if template.is_dir():
        await _copy(template, target, user)
        return
    await make(target)
    staging = _staging_dir(base, key, user)
    try:
        await _copy(target, staging / "data", user)
        _publish(staging / "data", template)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging_dir(base: Path, key: str, user: OsUser) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{key}.", dir=base))
    staging.chmod(0o755)
    user.chown(staging)
    return staging


def _publish(made: Path, template: Path) -> None:
    try:
        made.rename(template)
    except OSError:  # another process put the same template in place first
        pass


async def _copy(source: Path, target: Path, user: OsUser) -> None:
    await run_command(["cp", "-a", str(source), str(target)], user=user, timeout=_COPY_TIMEOUT)
