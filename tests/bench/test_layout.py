"""The bench package keeps its layers apart: no module imports, directly or through others, a
module that imports it back (function-level imports included, since they cycle just the same)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import bench

BENCH = Path(bench.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ("bench", *path.relative_to(BENCH).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bench_imports(path: Path, modules: set[str]) -> set[str]:
    """The bench modules that ``path`` imports anywhere in its body."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level \
                else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    # a package importing its own submodules (verb registration) is not a back edge
    return {m for m in found if m in modules and m != name and not m.startswith(name + ".")}


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in BENCH.rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): bench_imports(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once per entry point)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "bench.perf.speed" in graph["bench.cli.speed"]   # imported inside speed_command
    assert "bench.sweep.store" in graph["bench.analysis.stats"]


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_bench_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_lower_layers_never_import_the_cli():
    graph = import_graph()
    lower = [m for m in graph if not m.startswith("bench.cli") and m != "bench.__main__"]
    assert all(not any(t.startswith("bench.cli") for t in graph[m]) for m in lower)


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore means 'this module only': other modules import public names."""
    offenders = []
    for path in BENCH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                offenders += [f"{module_name(path)}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


def test_no_switch_on_a_model_name_outside_the_registry():
    """Per-model facts live in lae_core's objective registry, not in `model == "nd"` tests."""
    from lae_core import ALL_MODELS

    switch = re.compile(r"""[=!]=\s*["'](%s)["']|["'](%s)["']\s*[=!]=""" % (
        "|".join(ALL_MODELS), "|".join(ALL_MODELS)))
    found = [f"{path.relative_to(BENCH)}:{i}" for path in BENCH.rglob("*.py")
             for i, line in enumerate(path.read_text().splitlines(), 1) if switch.search(line)]
    assert found == []
