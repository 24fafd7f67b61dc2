"""The documentation site's sources: every public name has an API reference entry, and the README's
relative links lead to files that exist (the site itself is checked by ``mkdocs build --strict``)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import aurora_async
import aurora_async.data_api
import aurora_async.testing

ROOT = Path(__file__).parents[2]
MODULES = (aurora_async, aurora_async.data_api, aurora_async.testing)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_name_has_an_api_reference_entry(module: ModuleType) -> None:
    reference = (ROOT / "docs" / "reference.md").read_text()
    entries = set(re.findall(r"^::: ([\w.]+)$", reference, re.M))
    name = module.__name__
    missing = [n for n in module.__all__ if f"{name}.{n}" not in entries]
    assert not missing, f"docs/reference.md has no '::: {name}.NAME' entry for {missing}"


def _relative_links(markdown: str) -> list[str]:
    """Targets of inline links and images, reference definitions too, that are not URLs or anchors."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", markdown)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", markdown, re.M)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t)]


def test_every_relative_link_in_the_readme_leads_to_a_file() -> None:
    links = _relative_links((ROOT / "README.md").read_text())
    assert links  # the README links the docs pages
    broken = [t for t in links if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not broken, f"README.md links to missing files: {broken}"


def test_links_are_found_and_judged() -> None:
    sample = '[a](docs/x.md#y) [b](https://e.org) [c](#top) ![d](p.png "t")\n[e]: docs/z.md\n'
    assert _relative_links(sample) == ["docs/x.md#y", "p.png", "docs/z.md"]
