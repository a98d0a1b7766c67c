"""Sweep configuration: YAML -> validated, frozen dataclasses, checked before anything runs.

A sweep trains every (model, optimizer, k) cell of the config with all its seeds as one batch.
Every invalid value raises UsageError with one line naming the key path (``models[2]``,
``data.spectrum.kind``), the value and what is allowed; unknown keys are errors too.
See the README's "Config file reference" for every key; the presets in ``bench/presets/`` are
complete examples. Relative paths in a config file are relative to that file.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import numpy as np

from lae_core import (FORMULATIONS, MODELS, OPTIMIZERS, ConfigurationError, Dataset, Schedule,
                      choose_formulation, preset_hyperparameters)
from lae_core.backend import BACKENDS, DTYPES
from lae_core.data import SPECTRA, DataError, find_mnist_images
from lae_core.hyper import PRESETS as HYPER_PRESETS
from lae_core.hyper import geometric_keep_probs

from ..errors import UsageError
from .lr_table import LrTable, constant_table, load_table, paper_table, read_yaml

T = TypeVar("T")
DATA_KINDS = ("synthetic", "mnist", "npy")
MNIST_M = 784
HEADLINE = 0.3
TUNED = "tuned:"   # lr: tuned:FILE, the table `lae-bench tune` writes
# Per-model hyperparameter overrides, applied on top of the preset (Hyperparameters.resolve).
OVERRIDES = {"uniform_sum": ("lam",), "non_uniform_sum": ("w_range",),
             "nd_exp": ("decay",), "nd": ("decay",), "rotation": (), "vae": ()}
# Keys that describe a sweep without changing its results: left out of the config hash.
DESCRIPTIVE = ("description", "expected_cost", "estimate_before_run")


@dataclass(frozen=True)
class Spectrum:
    """Population eigenvalues of synthetic data (lae_core.data.spectrum); high None = 0.1 m."""

    kind: str = "linear"
    high: float | None = None
    low: float = 1.0
    alpha: float = 1.0
    values: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from. m is known after validation (from the .npy header too)."""

    kind: str = "synthetic"
    m: int = 1000
    n: int = 5000
    seed: int = 1234
    spectrum: Spectrum = Spectrum()
    path: str | None = None
    center: bool = False


@dataclass(frozen=True)
class Hyperparameters:
    """A lae_core preset ('paper' or 'well_posed') and per-model overrides (OVERRIDES)."""

    preset: str = "paper"
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def resolve(self, model: str, k: int, dataset: Dataset, data_kind: str) -> dict[str, Any]:
        """The hyperparameters of one cell: the preset's, then this config's overrides."""
        values = preset_hyperparameters(
            model, k, dataset.m, data_kind="mnist" if data_kind == "mnist" else "synthetic",
            preset=self.preset, eigvals=dataset.eigvals)
        override = self.overrides.get(model, {})
        if "lam" in override:
            values["lam"] = override["lam"]
        if "w_range" in override:
            values["lam"] = np.linspace(*override["w_range"], k) ** 2
        if "decay" in override:
            values["keep_probs"] = geometric_keep_probs(k, override["decay"])
        return values


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: the grid, the learning rates and how each run is trained."""

    name: str
    data: DataConfig
    models: tuple[str, ...]
    k: tuple[int, ...]
    lr: LrTable
    optimizers: tuple[str, ...] = ("sgd_nesterov", "adam")
    seeds: tuple[int, ...] = (0, 1, 2)
    thresholds: tuple[float, ...] = (HEADLINE,)
    headline: float = HEADLINE
    max_epochs: int = 50_000
    eval_every: int = 10
    dtype: str = "float32"
    backend: str = "auto"
    formulation: str = "auto"
    hyperparameters: Hyperparameters = Hyperparameters()
    stop_on_failure: bool = False
    history: bool = False
    description: str = ""
    expected_cost: str = ""
    estimate_before_run: bool = False

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.thresholds, self.max_epochs, self.eval_every, self.history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in the manifest (the lr table with all its rates)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("data", "lr",
               "hyperparameters")}
        return {**out, "data": asdict(self.data), "lr": self.lr.to_dict(),
                "hyperparameters": {"preset": self.hyperparameters.preset,
                                    **self.hyperparameters.overrides}}

    @property
    def hash(self) -> str:
        """8 hex digits identifying what the sweep computes (not its name or description)."""
        content = {k: v for k, v in self.to_dict().items() if k not in DESCRIPTIVE + ("name",)}
        return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]


# --- loading ------------------------------------------------------------------------------------

# Package data beside this module (importlib.resources trips over setuptools' editable installs).
PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"   # bench/presets/


def preset_names() -> list[str]:
    """The presets shipped in bench/presets/ (one YAML file each)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_text(name: str) -> str:
    return (PRESETS_DIR / f"{name}.yaml").read_text()


def load_config(target: str, overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """A preset name or a YAML file, with command-line overrides of top-level keys (and
    ``data.path``), validated. Errors are one line prefixed with the preset or file."""
    if target in preset_names():
        name, text, base_dir, origin = target, preset_text(target), Path.cwd(), f"preset {target}"
    elif target.endswith((".yaml", ".yml")) or Path(target).is_file():
        path = Path(target)
        name, text, base_dir, origin = path.stem, _read_text(path), path.parent, str(path)
    else:
        raise UsageError(f"run: {target!r} is neither a preset ({', '.join(preset_names())}) "
                         "nor a .yaml config file")
    raw = read_yaml(text, origin)
    if isinstance(raw, dict):
        raw = _merge(raw, overrides or {})
    try:
        return parse_config(raw, name=name, base_dir=base_dir)
    except UsageError as exc:
        raise UsageError(f"{origin}: {exc}") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"run: config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"run: cannot read config file {str(path)!r} "
                         f"({type(exc).__name__})") from None


def _merge(raw: dict, overrides: Mapping[str, Any]) -> dict:
    """Overrides replace top-level keys; a nested dict (data: {path: ...}) merges one level."""
    merged = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# --- validation helpers: each checks one value and names its key path on failure -----------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, value: Any, allowed: str) -> UsageError:
    return UsageError(f"{path}: {_show(value)} is not allowed; expected {allowed}")


def _mapping(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
             ) -> dict:
    allowed = tuple(allowed)
    if not isinstance(value, dict):
        raise _bad(path or "config", value, f"a mapping with keys {', '.join(allowed)}")
    prefix = f"{path}." if path else ""
    for key in value:
        if key not in allowed:
            raise UsageError(f"{prefix}{key}: unknown key; expected one of {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise UsageError(f"{prefix}{key}: missing; this key is required")
    return value


def _integer(value: Any, path: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        upper = f" to {high}" if high is not None else " or more"
        raise _bad(path, value, f"an integer from {low}{upper}")
    return value


def _number(value: Any, path: str, ok: Callable[[float], bool], what: str) -> float:
    """A finite float; numeric strings count, since YAML reads '1e-3' as text."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and ok(number)):
        raise _bad(path, value, what)
    return number


def _choice(value: Any, path: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise _bad(path, value, f"one of {', '.join(allowed)}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, value, "true or false")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, value, "text")
    return value


def _items(value: Any, path: str, item: Callable[[Any, str], T], unique: bool = True
           ) -> tuple[T, ...]:
    """A non-empty list, each element checked by ``item(element, 'path[i]')``."""
    if not isinstance(value, list) or not value:
        raise _bad(path, value, "a non-empty list")
    out = tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
    if unique and len(set(out)) != len(out):
        raise _bad(path, value, "a list without repeated values")
    return out


# --- the sections of a config -------------------------------------------------------------------

TOP_KEYS = ("description", "expected_cost", "estimate_before_run", "data", "models",
            "optimizers", "k", "lr", "seeds", "thresholds", "headline", "max_epochs",
            "eval_every", "dtype", "backend", "formulation", "hyperparameters",
            "stop_on_failure", "history")


def parse_config(raw: Any, *, name: str, base_dir: Path = Path(".")) -> SweepConfig:
    """Validate a parsed YAML document into a SweepConfig (see the module docstring)."""
    raw = _mapping(raw, "", TOP_KEYS, required=("models", "k"))
    data = parse_data(raw.get("data", {}), base_dir)
    models = _items(raw["models"], "models", lambda v, p: _choice(v, p, MODELS))
    optimizers = _items(raw.get("optimizers", ["sgd_nesterov", "adam"]), "optimizers",
                        lambda v, p: _choice(v, p, OPTIMIZERS))
    ks = _items(raw["k"], "k", lambda v, p: _integer(v, p, 1, data.m))
    thresholds = _items(raw.get("thresholds", [HEADLINE]), "thresholds",
                        lambda v, p: _number(v, p, lambda x: 0 < x < 1, "a number in (0, 1)"))
    max_epochs = _integer(raw.get("max_epochs", 50_000), "max_epochs", 1, 10**9)
    config = SweepConfig(
        name=name, data=data, models=models, optimizers=optimizers, k=tuple(sorted(ks)),
        lr=parse_lr(raw.get("lr", "paper"), data.kind, base_dir),
        seeds=parse_seeds(raw.get("seeds", {"count": 3})),
        thresholds=tuple(sorted(thresholds, reverse=True)),
        headline=_headline(raw, thresholds),
        max_epochs=max_epochs,
        eval_every=_integer(raw.get("eval_every", 10), "eval_every", 1, max_epochs),
        dtype=_choice(raw.get("dtype", "float32"), "dtype", DTYPES),
        backend=_choice(raw.get("backend", "auto"), "backend", BACKENDS),
        formulation=_choice(raw.get("formulation", "auto"), "formulation",
                            ("auto",) + FORMULATIONS),
        hyperparameters=parse_hyperparameters(raw.get("hyperparameters", {})),
        stop_on_failure=_boolean(raw.get("stop_on_failure", False), "stop_on_failure"),
        history=_boolean(raw.get("history", False), "history"),
        description=_text(raw.get("description", ""), "description"),
        expected_cost=_text(raw.get("expected_cost", ""), "expected_cost"),
        estimate_before_run=_boolean(raw.get("estimate_before_run", False),
                                     "estimate_before_run"))
    _check_grid(config)
    return config


def _headline(raw: dict, thresholds: tuple[float, ...]) -> float:
    """The threshold of tables and stop_on_failure: 0.3 when recorded, else the lowest."""
    default = HEADLINE if HEADLINE in thresholds else min(thresholds)
    value = _number(raw.get("headline", default), "headline", lambda x: x in thresholds,
                    f"one of the thresholds {list(thresholds)}")
    return value


def _check_grid(config: SweepConfig) -> None:
    """Every cell has a rate and a formulation that can run it."""
    for model in config.models:
        for optimizer in config.optimizers:
            try:
                choose_formulation(model, optimizer, config.formulation)
            except ConfigurationError as exc:
                raise UsageError(f"{exc} (model {model}, optimizer {optimizer})") from None
            for k in config.k:
                try:
                    config.lr.lookup(model, optimizer, k)
                except KeyError as exc:
                    raise UsageError(f"lr: {exc.args[0]}; give a number or a table file "
                                     "that covers it") from None


DATA_KEYS = {"synthetic": ("kind", "m", "n", "seed", "spectrum"),
             "mnist": ("kind", "path"), "npy": ("kind", "path", "center")}


def parse_data(raw: Any, base_dir: Path) -> DataConfig:
    """data: synthetic (m, n, seed, spectrum), mnist (path) or npy (path, center)."""
    every_key = dict.fromkeys(key for keys in DATA_KEYS.values() for key in keys)
    kind = _choice(_mapping(raw, "data", every_key).get("kind", "synthetic"), "data.kind",
                   DATA_KINDS)
    for key in raw:
        if key not in DATA_KEYS[kind]:
            raise UsageError(f"data.{key}: not used by kind {kind}; expected "
                             f"{', '.join(DATA_KEYS[kind])}")
    if kind != "synthetic" and raw.get("path") is None:
        raise UsageError(f"data.path: missing; kind {kind} needs it (or pass --data-path)")
    if kind == "synthetic":
        m = _integer(raw.get("m", 1000), "data.m", 2, 100_000)
        return DataConfig(kind, m, _integer(raw.get("n", 5000), "data.n", 1, 10**8),
                          _integer(raw.get("seed", 1234), "data.seed", 0),
                          parse_spectrum(raw.get("spectrum", {}), m))
    path = _resolve(_text(raw["path"], "data.path"), base_dir)
    if kind == "mnist":
        try:
            find_mnist_images(path)
        except DataError as exc:
            raise UsageError(f"{exc}; give the directory with data.path or --data-path") \
                from None
        return DataConfig(kind, MNIST_M, 60_000, path=path, center=True)
    n, m = _npy_shape(path)
    return DataConfig(kind, m, n, path=path,
                      center=_boolean(raw.get("center", False), "data.center"))


def _resolve(path: str, base_dir: Path) -> str:
    return str(path if Path(path).is_absolute() else base_dir / path)


def _npy_shape(path: str) -> tuple[int, int]:
    """(n, m) from the .npy header, without reading the samples."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
        raise UsageError(f"data.path: {path!r} is not a readable .npy file ({reason})") \
            from None
    if len(shape) != 2 or min(shape) < 2:
        raise _bad("data.path", path, f"an (n, m) array of samples, not shape {shape}")
    return shape[0], shape[1]


def parse_spectrum(raw: Any, m: int) -> Spectrum:
    positive = (lambda x: x > 0, "a positive number")
    raw = _mapping(raw, "data.spectrum", ("kind", "high", "low", "alpha", "values"))
    kind = _choice(raw.get("kind", "linear"), "data.spectrum.kind", SPECTRA)
    if "values" in raw and kind != "explicit":
        raise UsageError("data.spectrum.values: only used with kind explicit")
    values = None
    if kind == "explicit":
        if "values" not in raw:
            raise UsageError("data.spectrum.values: missing; kind explicit needs m values")
        values = _items(raw["values"], "data.spectrum.values",
                        lambda v, p: _number(v, p, *positive), unique=False)
        if len(values) != m:
            raise _bad("data.spectrum.values", f"{len(values)} values", f"m = {m} values")
    high = raw.get("high")
    return Spectrum(kind, None if high is None else _number(high, "data.spectrum.high", *positive),
                    _number(raw.get("low", 1.0), "data.spectrum.low", *positive),
                    _number(raw.get("alpha", 1.0), "data.spectrum.alpha", *positive), values)


def parse_lr(raw: Any, data_kind: str, base_dir: Path) -> LrTable:
    """A number for every cell, 'paper' (SPEC.md's table), a table file (lr_table.py), or
    ``tuned:FILE``: a table file written by ``lae-bench tune`` (the same format)."""
    if raw == "paper":
        return paper_table(data_kind)
    if isinstance(raw, str) and raw.startswith(TUNED):
        return load_table(_resolve(raw[len(TUNED):], base_dir))
    if isinstance(raw, str) and raw.lower().endswith((".yaml", ".yml", ".csv")):
        return load_table(_resolve(raw, base_dir))
    return constant_table(_number(raw, "lr", lambda x: x > 0, "a positive number, 'paper', "
                                  "a .yaml/.csv table file or tuned:FILE"))


def parse_seeds(raw: Any) -> tuple[int, ...]:
    """A list of seeds, or {count: N, start: S} for S, S+1, ..., S+N-1."""
    if isinstance(raw, dict):
        raw = _mapping(raw, "seeds", ("count", "start"), required=("count",))
        start = _integer(raw.get("start", 0), "seeds.start", 0)
        return tuple(range(start, start + _integer(raw["count"], "seeds.count", 1, 10_000)))
    return _items(raw, "seeds", lambda v, p: _integer(v, p, 0))


def parse_hyperparameters(raw: Any) -> Hyperparameters:
    """preset: paper | well_posed, then per-model overrides:
    uniform_sum {lam}, non_uniform_sum {w_range: [w_1, w_k]} (lam_i = w_i^2),
    nd_exp / nd {decay} (keep probabilities decay^i)."""
    raw = _mapping(raw, "hyperparameters", ("preset",) + MODELS)
    overrides = {}
    for model in MODELS:
        if model in raw:
            overrides[model] = _override(raw[model], f"hyperparameters.{model}", model)
    return Hyperparameters(_choice(raw.get("preset", "paper"), "hyperparameters.preset",
                                   HYPER_PRESETS), overrides)


def _override(raw: Any, path: str, model: str) -> dict[str, Any]:
    raw = _mapping(raw, path, OVERRIDES[model])
    out: dict[str, Any] = {}
    if "lam" in raw:
        out["lam"] = _number(raw["lam"], f"{path}.lam", lambda x: x >= 0, "a number >= 0")
    if "decay" in raw:
        out["decay"] = _number(raw["decay"], f"{path}.decay", lambda x: 0 < x <= 1,
                               "a number in (0, 1]")
    if "w_range" in raw:
        pair = _items(raw["w_range"], f"{path}.w_range",
                      lambda v, p: _number(v, p, lambda x: x >= 0, "a number >= 0"),
                      unique=False)
        if len(pair) != 2:
            raise _bad(f"{path}.w_range", raw["w_range"], "[w_1, w_k], two numbers")
        out["w_range"] = list(pair)
    return out
