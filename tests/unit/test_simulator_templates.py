"""Data-directory templates (``aurora_async.testing._templates``): made once, copied after, never half
made; with ``cp`` as the only process (no servers)."""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path

from aurora_async.testing._process import OsUser
from aurora_async.testing._templates import PREFIX, fill_from_template, template_key


def _me() -> OsUser:
    entry = pwd.getpwuid(os.geteuid())
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


class _Maker:
    """Stands for ``initdb``: writes a data directory and counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self, datadir: Path) -> None:
        self.runs += 1
        datadir.mkdir()
        (datadir / "PG_VERSION").write_text("15\n")
        (datadir / "base").mkdir()
        (datadir / "base" / "1").write_bytes(b"\x00" * 4096)


def _contents(datadir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(datadir)): p.read_bytes() for p in sorted(datadir.rglob("*")) if p.is_file()}


async def test_the_first_fill_makes_the_template_and_later_fills_copy_it(tmp_path: Path) -> None:
    make, user = _Maker(), _me()
    await fill_from_template(tmp_path / "one", base=tmp_path, key="k1", user=user, make=make)
    await fill_from_template(tmp_path / "two", base=tmp_path, key="k1", user=user, make=make)
    assert make.runs == 1
    assert _contents(tmp_path / "two") == _contents(tmp_path / "one") != {}
    # only the finished template is left beside the data directories: no staging directory
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(PREFIX)) == [f"{PREFIX}k1"]
    await fill_from_template(tmp_path / "three", base=tmp_path, key="k2", user=user, make=make)
    assert make.runs == 2  # another key, another template


async def test_two_first_fills_at_once_both_succeed(tmp_path: Path) -> None:
    make, user = _Maker(), _me()
    await asyncio.gather(
        fill_from_template(tmp_path / "d0", base=tmp_path, key="k", user=user, make=make),
        fill_from_template(tmp_path / "d1", base=tmp_path, key="k", user=user, make=make),
    )
    assert make.runs == 2  # neither found a template; one of the two results was kept
    assert _contents(tmp_path / "d0") == _contents(tmp_path / "d1") == _contents(tmp_path / f"{PREFIX}k")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(PREFIX)) == [f"{PREFIX}k"]


def test_the_key_changes_with_the_arguments_and_the_tool(tmp_path: Path) -> None:
    tool = tmp_path / "initdb"
    tool.write_text("#!/bin/sh\n")
    user = _me()
    first = template_key(str(tool), ["-E", "UTF8"], user)
    assert template_key(str(tool), ["-E", "UTF8"], user) == first
    assert template_key(str(tool), ["-E", "SQL_ASCII"], user) != first
    tool.write_text("#!/bin/sh\n# a new version\n")
    assert template_key(str(tool), ["-E", "UTF8"], user) != first
