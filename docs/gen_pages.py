"""Pages the docs site makes at build time (mkdocs-gen-files), so they cannot fall behind the code.

- ``reference/api/``: one page per public module of ``nas`` (found by walking the package, so a
  module added later appears with no edit here or in mkdocs.yml), each rendered by mkdocstrings
  from the docstrings, and its navigation (``SUMMARY.md``, read by mkdocs-literate-nav).
- ``reference/commands/``: one page per command group (a module of ``nas.cli``): the ``--help`` of each
  of its commands, taken from the real parser, and links to the API functions it calls.
- ``tables-format.md``: latency_tables/README.md, which stays beside the tables it describes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs.reference import api_modules, command_groups, group_page  # noqa: E402

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
groups = mkdocs_gen_files.Nav()
for group, group_commands in command_groups():
    groups[(", ".join(f"nas {words[1]}" for words, _ in group_commands if len(words) == 2),)] = f"{group}.md"
    with mkdocs_gen_files.open(f"reference/commands/{group}.md", "w") as out:
        out.write(group_page(group, group_commands))
with mkdocs_gen_files.open("reference/commands/SUMMARY.md", "w") as out:
    out.writelines(groups.build_literate_nav())
with mkdocs_gen_files.open("tables-format.md", "w") as out:
    out.write((ROOT / "latency_tables" / "README.md").read_text())
