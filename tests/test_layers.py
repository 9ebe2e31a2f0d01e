"""Dependencies go one way: every import under nas/, read with ``ast`` (imports inside functions
too), goes to a lower layer or stays inside its own subpackage, and no subpackages import each
other in a cycle. docs/architecture.md gives the same order."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

from tests.conftest import ROOT

PACKAGE = ROOT / "nas"
# Lowest first. A unit is a subpackage or a top-level module of nas/ ("nas" is the package's
# __init__); a unit may import its own modules and units of lower layers, nothing else.
LAYERS = (
    ("errors",),
    (
        "nas",
        "quiet",
        "rss",
        "plugins",
        "metrics",
        "options",
        "interrupts",
        "outputs",
        "machine",
    ),  # small base modules anyone may import
    ("registry", "processes"),  # the one plug-in mechanism (it loads inherited plugins); warm child processes
    ("ops",),  # temporal op types, their registry and table keys: what a space is written in
    ("space",),
    ("model",),
    ("data", "prune"),  # latents in, pruned 2D weights in
    ("cost", "pipeline"),  # device tables and pricing; the few-step sampling pipeline
    ("profile", "quality"),  # measuring (and Core ML conversion, which the profiler needs); quality proxies
    ("search",),  # the study: prices with cost, scores with quality
    ("train", "generate", "export"),
    ("cli",),
    ("__main__",),  # python -m nas
)


class Import(NamedTuple):
    module: str  # importing module, dotted
    line: int
    target: str  # imported module, dotted (``from nas import plugins`` -> nas.plugins)


def unit_of(module: str) -> str:
    """``nas.cost.table`` -> ``cost``; ``nas`` -> ``nas``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(package: Path = PACKAGE) -> list[Import]:
    """Every import of a ``nas`` module by a module of ``package``, wherever it stands in the file."""
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against the importing module's package
                    anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from nas import plugins`` names a module; ``from nas.ops import get_op`` a name in one
                targets = [
                    f"{base}.{alias.name}" if _is_module(package, f"{base}.{alias.name}") else base
                    for alias in node.names
                ]
            else:
                continue
            found += [Import(module, node.lineno, t) for t in dict.fromkeys(targets) if t.split(".")[0] == package.name]
    return found


def _is_module(package: Path, dotted: str) -> bool:
    path = package.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def problems(imports: list[Import], layers=LAYERS) -> list[str]:
    """One line per import that goes up or sideways, per unit the layers do not place, per cycle."""
    rank = {unit: level for level, units in enumerate(layers) for unit in units}
    out = []
    for unit in sorted({unit_of(i.module) for i in imports} | {unit_of(i.target) for i in imports}):
        if unit not in rank:
            out.append(
                f"nas.{unit}: in no layer (add it to LAYERS in tests/test_layers.py and to docs/architecture.md)"
            )
    edges: dict[str, set[str]] = {}
    for item in imports:
        source, target = unit_of(item.module), unit_of(item.target)
        if source == target or source not in rank or target not in rank:
            continue
        edges.setdefault(source, set()).add(target)
        if rank[target] >= rank[source]:
            way = "up" if rank[target] > rank[source] else "sideways"
            out.append(
                f"{item.module} (line {item.line}) imports {item.target}: {way}, from layer "
                f"{'/'.join(layers[rank[source]])} to {'/'.join(layers[rank[target]])}"
            )
    out += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(edges)]
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each unit that lies on one (depth-first search)."""
    cycles, done = [], set()

    def visit(unit: str, path: list[str]) -> None:
        for target in sorted(edges.get(unit, ())):
            if target in path:
                cycle = path[path.index(target) :] + [target]
                if not set(cycle) <= done:
                    cycles.append(cycle)
                    done.update(cycle)
            elif target not in done:
                visit(target, path + [target])

    for unit in sorted(edges):
        visit(unit, [unit])
    return cycles


def test_nas_imports_go_one_way():
    imports = package_imports()
    assert len(imports) > 200  # the walk sees the package (lazy imports inside functions included)
    assert Import("nas.cost.cost_model", 0, "nas.cost.workload") in {i._replace(line=0) for i in imports}
    assert problems(imports) == []


def test_the_check_names_an_upward_import_and_a_cycle(tmp_path):
    fake = tmp_path / "nas"
    (fake / "cost").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "cost" / "__init__.py").write_text("")
    (fake / "cost" / "roofline.py").write_text("import math\n\n\ndef f():\n    from nas.profile import workload\n")
    (fake / "profile").mkdir()
    (fake / "profile" / "__init__.py").write_text("from .workload import build\n")
    (fake / "profile" / "workload.py").write_text("from nas.cost import roofline\nbuild = 1\n")
    (fake / "tools.py").write_text("from nas import cost\n")
    imports = package_imports(fake)
    assert Import("nas.cost.roofline", 5, "nas.profile.workload") in imports
    assert Import("nas.profile", 1, "nas.profile.workload") in imports  # relative, resolved
    found = problems(imports, LAYERS)
    assert (
        "nas.cost.roofline (line 5) imports nas.profile.workload: up, from layer cost/pipeline to profile/quality"
        in found
    )
    assert "nas.tools: in no layer (add it to LAYERS in tests/test_layers.py and to docs/architecture.md)" in found
    assert "import cycle: cost -> profile -> cost" in found
    siblings = problems([Import("nas.quality.proxies", 3, "nas.profile.runner")])
    assert siblings == [
        "nas.quality.proxies (line 3) imports nas.profile.runner: sideways, from layer profile/quality to profile/quality"
    ]
