"""No code in lae_core or bench branches on a model's name.

What differs between models is an attribute of its objective in ``lae_core.objectives``
(``lam_per_unit``, ``logs_objective``, ``extra_param_names``, ``kk_form``, ...), so that a new
model is one registry entry. A comparison of a value with a literal model name (``==``, ``!=``,
``in``, ``not in``, a ``match`` case) anywhere in the two packages fails here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import bench
import lae_core
from lae_core import ALL_MODELS

SOURCE_ROOTS = [Path(package.__file__).resolve().parent for package in (lae_core, bench)]


def names_a_model(node: ast.AST) -> bool:
    """A literal model name, or a literal tuple, list or set holding one."""
    if isinstance(node, ast.Constant):
        return node.value in ALL_MODELS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(names_a_model(element) for element in node.elts)
    return False


def model_switches(source: str) -> list[int]:
    """Line numbers where ``source`` compares something with a literal model name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
                names_a_model(operand) for operand in (node.left, *node.comparators)):
            lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and names_a_model(node.value):
            lines.append(node.value.lineno)
    return sorted(lines)


def test_the_scan_catches_every_form_of_a_model_switch():
    planted = '''
if model == "vae":
    pass
if name in ("nd_exp", "nd"):
    pass
loss = full if "rotation" != objective.name else recon
match model:
    case "uniform_sum":
        pass
'''
    assert model_switches(planted) == [2, 4, 6, 8]


def test_the_scan_leaves_other_comparisons_alone():
    allowed = '''
if form == "spectral" or objective.kk_form == "rag":
    pass
if model in MODELS and "lam" in objective.hyperparameters:
    pass
RULES = {"vae": 1}
'''
    assert model_switches(allowed) == []


def test_no_source_file_switches_on_a_model_name():
    found = [f"{path.relative_to(root.parent)}:{line}"
             for root in SOURCE_ROOTS for path in sorted(root.rglob("*.py"))
             for line in model_switches(path.read_text(encoding="utf-8"))]
    assert found == []
