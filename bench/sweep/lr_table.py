"""Learning-rate tables: the paper's rates and table files, looked up by model,
optimizer and latent size k.

A table lists, per (model, optimizer), a rate at some values of k, or one rate for every k. For a
k that is not listed, the rate of the nearest listed k applies (a tie goes to the smaller k). On
the paper's k grid this is exactly the paper's rule of ranges: "3e-3 for k <= 50, 1e-2 for
k >= 100" gives 3e-3 at k = 70 and 1e-2 at k = 1000.

Table files (the format ``lr: FILE`` reads and ``save_table`` writes):

YAML, model -> optimizer -> a rate for every k, or a mapping k -> rate::

    rotation:
      sgd_nesterov: 1.0e-4
      adam: {2: 3.0e-4, 50: 1.0e-3}

CSV with the header ``model,optimizer,k,lr``, one rate per row; ``k`` is ``*`` for every k::

    model,optimizer,k,lr
    rotation,sgd_nesterov,*,0.0001
    rotation,adam,2,0.0003
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from lae_core import ALL_MODELS, OPTIMIZERS

from ..errors import UsageError
from ..schema import check_lr_row
from ..validate import bad, read_yaml
from .store import write_bytes_atomic

EVERY_K = "*"     # how a rate for every k is written in files
PAPER_K = (2, 5, 10, 20, 50, 100, 200, 300, 400, 500)
MNIST_K = 20

# The paper's learning rates on synthetic data (SGD = Nesterov), as its official code sets them.
# A rate for every k, or {largest k of a range of PAPER_K: rate}, ranges in increasing order.
_SYNTHETIC = {
    "nd_exp":          {"sgd_nesterov": 1e-3, "adam": {50: 3e-3, 500: 1e-2}},
    "nd":              {"sgd_nesterov": 1e-3, "adam": {20: 1e-2, 500: 3e-3}},
    "non_uniform_sum": {"sgd_nesterov": 1e-3, "adam": 3e-3},
    "rotation":        {"sgd_nesterov": 1e-4, "adam": 3e-4},
    "uniform_sum":     {"sgd_nesterov": 1e-3, "adam": 3e-3},
    "vae":             {"sgd_nesterov": 3e-4, "adam": {20: 3e-3, 500: 1e-3}},
}
# The PCA learners (lae_core.learners) are not in the paper. Their rates on the same synthetic
# spectrum (sampled c_1 ~ 144) were set by hand from trials: Nesterov 1e-3 reaches 0.3 at
# k = 2-500 (the baselines preset, 3 seeds), Adam 3e-3 at k = 2-50 and GD 1e-2 at k = 5 (one
# seed, 80-240 epochs; docs/results.md, "Baseline learners"); GD's 1e-2 is near its stability edge;
# `lae-bench tune` refines them. eigh takes no step: its rate is a placeholder every table holds.
_LEARNERS = {
    "gha":       {"sgd_nesterov": 1e-3, "adam": 3e-3, "gd": 1e-2},
    "eigengame": {"sgd_nesterov": 1e-3, "adam": 3e-3, "gd": 1e-2},
    "oja":       {"sgd_nesterov": 1e-3, "adam": 3e-3, "gd": 1e-2},
    "eigh":      {"sgd_nesterov": 1.0, "adam": 1.0, "gd": 1.0},
}
# MNIST, k = 20 only: model -> (SGD, Adam).
_MNIST = {
    "nd_exp": (3e-2, 1e-2), "nd": (3e-2, 1e-2), "non_uniform_sum": (3e-4, 1e-2),
    "rotation": (3e-3, 1e-3), "uniform_sum": (1e-3, 1e-3), "vae": (1e-3, 1e-3),
}

Rates = Mapping[tuple[str, str], Mapping[Any, float]]   # (model, optimizer) -> {k or "*": lr}


@dataclass(frozen=True)
class LrTable:
    """Learning rates by (model, optimizer) and k; ``default`` applies to any pair not listed
    (a single number given for the whole sweep is a table with only a default)."""

    source: str
    rates: Rates
    default: float | None = None

    def lookup(self, model: str, optimizer: str, k: int) -> float:
        """The rate for (model, optimizer, k): nearest listed k, ties to the smaller k."""
        by_k = self.rates.get((model, optimizer))
        if by_k is None:
            if self.default is None:
                raise KeyError(f"{self.source} has no rate for {model}/{optimizer}")
            return self.default
        if EVERY_K in by_k:
            return by_k[EVERY_K]
        nearest = min(by_k, key=lambda listed: (abs(listed - k), listed))
        return by_k[nearest]

    def rows(self) -> list[dict[str, Any]]:
        """One {model, optimizer, k, lr} per listed rate, in registry order."""
        order = {name: i for i, name in enumerate(ALL_MODELS + OPTIMIZERS)}
        rows = [{"model": model, "optimizer": opt, "k": k, "lr": lr}
                for (model, opt), by_k in self.rates.items() for k, lr in by_k.items()]
        return sorted(rows, key=lambda r: (order[r["model"]], order[r["optimizer"]],
                                           -1 if r["k"] == EVERY_K else r["k"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the manifest and the config hash)."""
        return {"source": self.source, "default": self.default, "rates": self.rows()}


def constant_table(lr: float) -> LrTable:
    return LrTable(source=f"lr {lr:g}", rates={}, default=lr)


def paper_table(data_kind: str = "synthetic") -> LrTable:
    """The official code's rates: MNIST's for MNIST data, the synthetic ones otherwise."""
    if data_kind == "mnist":
        rates = {(model, opt): {MNIST_K: lr} for model, pair in _MNIST.items()
                 for opt, lr in zip(("sgd_nesterov", "adam"), pair)}
        return LrTable("the paper's MNIST table", rates)
    rates = {(model, opt): _expand_ranges(rule)
             for model, by_opt in {**_SYNTHETIC, **_LEARNERS}.items()
             for opt, rule in by_opt.items()}
    return LrTable("the paper's synthetic table", rates)


def _expand_ranges(rule: float | dict[int, float]) -> dict[Any, float]:
    """A rate, or {largest k of a range: rate}, as rates at the k of PAPER_K."""
    if not isinstance(rule, dict):
        return {EVERY_K: rule}
    return {k: next(lr for upper, lr in rule.items() if k <= upper) for k in PAPER_K}


# --- table files --------------------------------------------------------------------------------

def load_table(path: str | Path) -> LrTable:
    """Read a table file (.yaml/.yml or .csv; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"lr: table file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and set(rows[0]) != {"model", "optimizer", "k", "lr"}:
            raise UsageError(f"lr table {path}: the CSV header must be model,optimizer,k,lr")
    elif path.suffix.lower() in (".yaml", ".yml"):
        rows = _yaml_rows(path, text)
    else:
        raise UsageError(f"lr: table file {str(path)!r} must end in .yaml, .yml or .csv")
    return _table_from_rows(rows, str(path))


def _yaml_rows(path: Path, text: str) -> list[dict[str, Any]]:
    raw = read_yaml(text, f"lr table {path}")
    if not isinstance(raw, dict):
        raise UsageError(f"lr table {path}: expected a mapping model -> optimizer -> rate")
    rows = []
    for model, by_opt in raw.items():
        if not isinstance(by_opt, dict):
            raise UsageError(f"lr table {path}: {model}: expected a mapping optimizer -> rate")
        for opt, rule in by_opt.items():
            by_k = rule if isinstance(rule, dict) else {EVERY_K: rule}
            rows += [{"model": model, "optimizer": opt, "k": k, "lr": lr}
                     for k, lr in by_k.items()]
    return rows


def _table_from_rows(rows: list[dict[str, Any]], source: str) -> LrTable:
    """Validated rates from {model, optimizer, k, lr} rows; errors name the row."""
    rates: dict[tuple[str, str], dict[Any, float]] = {}
    for i, row in enumerate(rows, start=1):
        where = f"lr table {source}: entry {i} ({row['model']}/{row['optimizer']}/k={row['k']})"
        model, optimizer, lr = check_lr_row(row, where, ALL_MODELS, OPTIMIZERS)
        k = _k_or_every(row["k"], where)
        by_k = rates.setdefault((model, optimizer), {})
        if k in by_k or (by_k and EVERY_K in {k, *by_k}):
            raise UsageError(f"{where}: a second rate for this model/optimizer and k")
        by_k[k] = lr
    if not rates:
        raise UsageError(f"lr table {source}: no rates in it")
    return LrTable(source, rates)


def _k_or_every(value: Any, where: str) -> Any:
    """A positive k, or EVERY_K; CSV cells arrive as text."""
    cell = str(value).strip()
    if cell == EVERY_K:
        return EVERY_K
    if isinstance(value, bool) or not cell.isdigit() or int(cell) < 1:
        raise bad(f"{where}: k", value, f"a positive integer or {EVERY_K!r} (every k)")
    return int(cell)


def save_table(table: LrTable, path: str | Path) -> None:
    """Write ``table`` as a table file; the format follows the suffix (.csv, else YAML)."""
    path = Path(path)
    rows = table.rows()
    if path.suffix.lower() == ".csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["model", "optimizer", "k", "lr"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "lr": repr(r["lr"])} for r in rows)
        payload = out.getvalue()
    else:
        nested: dict[str, dict[str, Any]] = {}
        for r in rows:
            by_opt = nested.setdefault(r["model"], {})
            by_opt[r["optimizer"]] = r["lr"] if r["k"] == EVERY_K else {
                **by_opt.get(r["optimizer"], {}), r["k"]: r["lr"]}
        payload = yaml.safe_dump(nested, sort_keys=False)
    write_bytes_atomic(path, payload.encode())
