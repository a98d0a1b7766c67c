"""The source keeps one layer order, and every import points down it or stays level:

    lae_core  <  bench ground (errors, paths, formatting, validate)  <  bench.sweep
              <  bench.analysis  <  bench.perf  <  bench.cli

Imports inside functions count (they tie the layers just the same); a package importing its own
submodules counts as level. The checker is shown to fail on planted upward imports, so a green
run means the order holds, not that the checker saw nothing."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bench
import lae_core

ROOTS = {"bench": Path(bench.__file__).resolve().parent,
         "lae_core": Path(lae_core.__file__).resolve().parent}
# Lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS = (("lae_core",),
          ("bench", "bench.errors", "bench.paths", "bench.formatting", "bench.validate",
           "bench.built_from"),
          ("bench.sweep",),
          ("bench.analysis",),
          ("bench.perf",),
          ("bench.cli", "bench.__main__", "bench.entry"))


def layer_of(module: str) -> int | None:
    """The layer index of a lae_core or bench module; None for anything else (numpy, ...)."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path) -> str:
    root_name, root = next((n, r) for n, r in ROOTS.items() if r in path.parents)
    parts = (root_name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every module that ``source`` (the text of ``module``) imports, anywhere in its body;
    ``from X import name`` counts as X and as X.name (name may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def upward_imports(module: str, source: str, is_package: bool = False) -> list[str]:
    """'module -> target' for each import of a higher layer than ``module``'s own."""
    own = layer_of(module)
    return sorted(f"{module} -> {target}"
                  for target in imported_modules(module, source, is_package)
                  if (layer_of(target) or 0) > own)


def source_modules() -> list[tuple[str, Path]]:
    return [(module_name(path), path) for root in ROOTS.values()
            for path in sorted(root.rglob("*.py"))]


def test_every_import_points_to_the_same_or_a_lower_layer():
    offenders = [hit for module, path in source_modules()
                 for hit in upward_imports(module, path.read_text(),
                                           path.name == "__init__.py")]
    assert offenders == []


def test_every_source_module_has_a_layer():
    assert [m for m, _ in source_modules() if layer_of(m) is None] == []


@pytest.mark.parametrize("module, source", [
    ("bench.sweep.runner", "from ..perf.reference import ReferenceClock"),
    ("bench.sweep.runner", "def run():\n    from bench.analysis.stats import median_epochs"),
    ("bench.analysis.stats", "import bench.cli"),
    ("bench.validate", "from .sweep import config"),
    ("lae_core.train", "from bench.errors import UsageError"),
])
def test_an_upward_import_fails_the_check(module, source):
    assert upward_imports(module, source) != []


@pytest.mark.parametrize("module, source", [
    ("bench.cli.run", "from ..sweep.runner import Sweep\nfrom ..analysis.table import render"),
    ("bench.perf.tune", "from ..sweep.censored import median_epochs"),
    ("bench.sweep.store", "from ..errors import UsageError\nimport numpy"),
    ("bench.analysis.compare", "from .stats import load_results"),
])
def test_a_level_or_downward_import_passes_the_check(module, source):
    assert upward_imports(module, source) == []


def test_imports_inside_functions_are_seen():
    source = "def f():\n    from ..perf import speed\n    return speed"
    assert imported_modules("bench.cli.speed", source) >= {"bench.perf", "bench.perf.speed"}


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore means 'this module only': other modules import public names."""
    offenders = []
    for module, path in source_modules():
        if not module.startswith("bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                offenders += [f"{module}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []
