"""Pages the docs site makes at build time (mkdocs-gen-files), so they cannot fall behind the code.

- ``reference/api/``: one page per public module of ``nas`` (found by walking the package, so a
  module added later appears with no edit here or in mkdocs.yml), each rendered by mkdocstrings
  from the docstrings, and its navigation (``SUMMARY.md``, read by mkdocs-literate-nav).
- ``reference/cli.md``: the ``--help`` of every ``nas`` command, taken from the real parser.
- ``tables-format.md``: latency_tables/README.md, which stays beside the tables it describes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs.reference import api_modules, cli_reference  # noqa: E402

nav = mkdocs_gen_files.Nav()
for module in api_modules():
    parts = tuple(module.split("."))
    is_package = (ROOT.joinpath(*parts) / "__init__.py").is_file()
    page = Path("reference/api", *parts, "index.md") if is_package else Path("reference/api", *parts).with_suffix(".md")
    nav[parts] = page.relative_to("reference/api").as_posix()
    with mkdocs_gen_files.open(page, "w") as out:
        out.write(f"# `{module}`\n\n::: {module}\n")
with mkdocs_gen_files.open("reference/api/SUMMARY.md", "w") as out:
    out.writelines(nav.build_literate_nav())

os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: one width for every build
with mkdocs_gen_files.open("reference/cli.md", "w") as out:
    out.write(cli_reference())
with mkdocs_gen_files.open("tables-format.md", "w") as out:
    out.write((ROOT / "latency_tables" / "README.md").read_text())
