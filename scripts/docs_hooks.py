"""mkdocs hooks for the documentation site (``mkdocs.yml``: ``hooks:``).

- Files outside ``docs/`` that the pages link to (the results in ``benchmarks/results/``, the failover
  timeline picture, the benchmarks and ``examples/`` they name) are added to the site from where they
  are, not copied by hand. Pages link them as ``../benchmarks/...`` and ``../examples/...`` so the
  same links work when the Markdown is read on its own; here they are re-pointed to the site's copy.
- ``docs/options.md`` gets the option table, and the list of the options a cluster's connections
  share, generated from ``aurora_async/_options.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_options import CLUSTER_MARKER, MARKER, ROOT, render_cluster_settings, render_options_table

# (folder under the repository root, file name patterns) added to the site at the same path
OUTSIDE = (("benchmarks/results", ("*.md", "*.png")), ("benchmarks", ("*.py",)), ("examples", ("*.py",)))
_OUTSIDE_LINK = re.compile(r"\]\(\.\./(" + "|".join(re.escape(d) for d, _ in OUTSIDE) + r")/")


def on_files(files: Files, config: Any) -> Files:
    for folder, patterns in OUTSIDE:
        for pattern in patterns:
            for path in sorted((ROOT / folder).glob(pattern)):
                rel = path.relative_to(ROOT).as_posix()
                if files.get_file_from_path(rel) is None:
                    files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri.count("/") == 0:  # a page at the top of docs/: ../x is x in the site
        markdown = _OUTSIDE_LINK.sub(r"](\1/", markdown)
    if page.file.src_uri == "options.md":
        if MARKER not in markdown:
            raise ValueError(f"docs/options.md lost its {MARKER} line")
        markdown = markdown.replace(MARKER, render_options_table())
        markdown = markdown.replace(CLUSTER_MARKER, render_cluster_settings())
    return markdown
