# Over 400 lines: each config section's dataclass and its parser stay side by side, so a key's
# type, default and check are read together.
"""Sweep configuration: YAML -> validated, frozen dataclasses, checked before anything runs.

A sweep trains every (model, optimizer, k) cell of the config with all its seeds as one batch.
Every invalid value raises UsageError with one line naming the key path (``models[2]``,
``data.spectrum.kind``), the value and what is allowed; unknown keys are errors too.
docs/configuration.md describes every key; the presets in ``bench/presets/`` are complete
examples. Relative paths in a config file are relative to that file.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lae_core import (ALL_MODELS, FORMULATIONS, MODELS, OPTIMIZERS, ConfigurationError, Dataset,
                      Schedule,
                      choose_formulation, preset_hyperparameters)
from lae_core.backend import BACKENDS, DTYPES
from lae_core.data import SPECTRA, DataError, find_mnist_images
from lae_core.hyper import PRESETS as HYPER_PRESETS
from lae_core.hyper import geometric_keep_probs

from ..errors import UsageError
from ..validate import (bad, boolean, choice, integer, items, mapping, number, read_yaml,
                        text, unreadable)
from .lr_table import LrTable, constant_table, load_table, paper_table

DATA_KINDS = ("synthetic", "mnist", "npy")
MNIST_M = 784
HEADLINE = 0.3
MAX_EPOCHS = 50_000   # the epoch cap when a config names none (the paper's)
TUNED = "tuned:"   # lr: tuned:FILE, the table `lae-bench tune` writes
# Per-model hyperparameter overrides, applied on top of the preset (Hyperparameters.resolve).
OVERRIDES = {"uniform_sum": ("lam",), "non_uniform_sum": ("w_range",),
             "nd_exp": ("decay",), "nd": ("decay",), "rotation": (), "vae": ()}
# Keys that describe a sweep without changing its results: left out of the config hash.
DESCRIPTIVE = ("description", "expected_cost", "estimate_before_run")
# Where the cells run is not what the sweep is: left out of the stored config and its hash (each
# session in the manifest records its own scheduler), so any scheduler resumes any run.
EXECUTION = ("scheduler", "threads")
SCHEDULER_FORMS = ("local:N (N worker processes), cuda (one worker per GPU) or tcp://HOST:PORT "
                   "(a running Dask scheduler)")
LOCAL_SCHEDULER = re.compile(r"local:([0-9]{1,4})")
TCP_SCHEDULER = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


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
    max_epochs: int = MAX_EPOCHS
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
    scheduler: str | None = None
    threads: str | int = "auto"         # BLAS threads per cell: "auto" (bench.sweep.threads)
    k_max: dict[str, int] = field(default_factory=dict)   # model -> its largest k

    def ks_for(self, model: str) -> tuple[int, ...]:
        """The grid's k for ``model``: all of them, or those up to its ``k_max``."""
        return tuple(k for k in self.k if k <= self.k_max.get(model, k))

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.thresholds, self.max_epochs, self.eval_every, self.history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in the manifest (the lr table with all its rates)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("data", "lr",
               "hyperparameters") + EXECUTION}
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
        name, content, base_dir, origin = (target, preset_text(target), Path.cwd(),
                                           f"preset {target}")
    elif target.endswith((".yaml", ".yml")) or Path(target).is_file():
        path = Path(target)
        name, content, base_dir, origin = path.stem, _read_text(path), path.parent, str(path)
    else:
        raise UsageError(f"run: {target!r} is neither a preset ({', '.join(preset_names())}) "
                         "nor a .yaml config file")
    raw = read_yaml(content, origin)
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
                         f"({unreadable(exc)})") from None


def _merge(raw: dict, overrides: Mapping[str, Any]) -> dict:
    """Overrides replace top-level keys; a nested dict (data: {path: ...}) merges one level."""
    merged = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# --- the sections of a config -------------------------------------------------------------------

TOP_KEYS = ("description", "expected_cost", "estimate_before_run", "data", "models",
            "optimizers", "k", "lr", "seeds", "thresholds", "headline", "max_epochs",
            "eval_every", "dtype", "backend", "formulation", "hyperparameters",
            "stop_on_failure", "history", "scheduler", "threads", "k_max")


def parse_config(raw: Any, *, name: str, base_dir: Path = Path(".")) -> SweepConfig:
    """Validate a parsed YAML document into a SweepConfig (see the module docstring)."""
    raw = mapping(raw, "", TOP_KEYS, required=("models", "k"))
    data = parse_data(raw.get("data", {}), base_dir)
    models = items(raw["models"], "models", lambda v, p: choice(v, p, ALL_MODELS))
    optimizers = items(raw.get("optimizers", ["sgd_nesterov", "adam"]), "optimizers",
                        lambda v, p: choice(v, p, OPTIMIZERS))
    ks = items(raw["k"], "k", lambda v, p: integer(v, p, 1, data.m))
    thresholds = items(raw.get("thresholds", [HEADLINE]), "thresholds",
                        lambda v, p: number(v, p, lambda x: 0 < x < 1, "a number in (0, 1)"))
    max_epochs = integer(raw.get("max_epochs", MAX_EPOCHS), "max_epochs", 1, 10**9)
    config = SweepConfig(
        name=name, data=data, models=models, optimizers=optimizers, k=tuple(sorted(ks)),
        lr=parse_lr(raw.get("lr", "paper"), data.kind, base_dir),
        seeds=parse_seeds(raw.get("seeds", {"count": 3})),
        thresholds=tuple(sorted(thresholds, reverse=True)),
        headline=_headline(raw, thresholds),
        max_epochs=max_epochs,
        eval_every=integer(raw.get("eval_every", 10), "eval_every", 1, max_epochs),
        dtype=choice(raw.get("dtype", "float32"), "dtype", DTYPES),
        backend=choice(raw.get("backend", "auto"), "backend", BACKENDS),
        formulation=choice(raw.get("formulation", "auto"), "formulation",
                            ("auto",) + FORMULATIONS),
        hyperparameters=parse_hyperparameters(raw.get("hyperparameters", {})),
        stop_on_failure=boolean(raw.get("stop_on_failure", False), "stop_on_failure"),
        history=boolean(raw.get("history", False), "history"),
        description=text(raw.get("description", ""), "description"),
        expected_cost=text(raw.get("expected_cost", ""), "expected_cost"),
        estimate_before_run=boolean(raw.get("estimate_before_run", False),
                                     "estimate_before_run"),
        scheduler=parse_scheduler(raw.get("scheduler")),
        threads=parse_threads(raw.get("threads", "auto")),
        k_max=parse_k_max(raw.get("k_max", {}), models))
    _check_grid(config)
    return config


def parse_k_max(raw: Any, models: tuple[str, ...]) -> dict[str, int]:
    """k_max: {MODEL: K}: run MODEL only up to K (e.g. the sample-form nd in a short preset)."""
    raw = mapping(raw, "k_max", models)
    return {model: integer(value, f"k_max.{model}", 1) for model, value in raw.items()}


def _headline(raw: dict, thresholds: tuple[float, ...]) -> float:
    """The threshold of tables and stop_on_failure: 0.3 when recorded, else the lowest."""
    default = HEADLINE if HEADLINE in thresholds else min(thresholds)
    value = number(raw.get("headline", default), "headline", lambda x: x in thresholds,
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
    kind = choice(mapping(raw, "data", every_key).get("kind", "synthetic"), "data.kind",
                   DATA_KINDS)
    for key in raw:
        if key not in DATA_KEYS[kind]:
            raise UsageError(f"data.{key}: not used by kind {kind}; expected "
                             f"{', '.join(DATA_KEYS[kind])}")
    if kind != "synthetic" and raw.get("path") is None:
        raise UsageError(f"data.path: missing; kind {kind} needs it (or pass --data-path)")
    if kind == "synthetic":
        m = integer(raw.get("m", 1000), "data.m", 2, 100_000)
        return DataConfig(kind, m, integer(raw.get("n", 5000), "data.n", 1, 10**8),
                          integer(raw.get("seed", 1234), "data.seed", 0),
                          parse_spectrum(raw.get("spectrum", {}), m))
    path = _resolve(text(raw["path"], "data.path"), base_dir)
    if kind == "mnist":
        try:
            find_mnist_images(path)
        except DataError as exc:
            raise UsageError(f"{exc}; give the directory with data.path or --data-path") \
                from None
        return DataConfig(kind, MNIST_M, 60_000, path=path, center=True)
    n, m = _npy_shape(path)
    return DataConfig(kind, m, n, path=path,
                      center=boolean(raw.get("center", False), "data.center"))


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
        raise bad("data.path", path, f"an (n, m) array of samples, not shape {shape}")
    return shape[0], shape[1]


def parse_spectrum(raw: Any, m: int) -> Spectrum:
    positive = (lambda x: x > 0, "a positive number")
    raw = mapping(raw, "data.spectrum", ("kind", "high", "low", "alpha", "values"))
    kind = choice(raw.get("kind", "linear"), "data.spectrum.kind", SPECTRA)
    if "values" in raw and kind != "explicit":
        raise UsageError("data.spectrum.values: only used with kind explicit")
    values = None
    if kind == "explicit":
        if "values" not in raw:
            raise UsageError("data.spectrum.values: missing; kind explicit needs m values")
        values = items(raw["values"], "data.spectrum.values",
                        lambda v, p: number(v, p, *positive), unique=False)
        if len(values) != m:
            raise bad("data.spectrum.values", f"{len(values)} values", f"m = {m} values")
    high = raw.get("high")
    high = None if high is None else number(high, "data.spectrum.high", *positive)
    low = number(raw.get("low", 1.0), "data.spectrum.low", *positive)
    if high is not None and high <= low:    # eigenvalues are sorted high to low
        raise bad("data.spectrum.high", high, f"a number above data.spectrum.low = {low:g}")
    return Spectrum(kind, high, low,
                    number(raw.get("alpha", 1.0), "data.spectrum.alpha", *positive), values)


def parse_lr(raw: Any, data_kind: str, base_dir: Path) -> LrTable:
    """A number for every cell, 'paper' (the paper's table), a table file (lr_table.py), or
    ``tuned:FILE``: a table file written by ``lae-bench tune`` (the same format)."""
    if raw == "paper":
        return paper_table(data_kind)
    if isinstance(raw, str) and raw.startswith(TUNED):
        return load_table(_resolve(raw[len(TUNED):], base_dir))
    if isinstance(raw, str) and raw.lower().endswith((".yaml", ".yml", ".csv")):
        return load_table(_resolve(raw, base_dir))
    return constant_table(number(raw, "lr", lambda x: x > 0, "a positive number, 'paper', "
                                  "a .yaml/.csv table file or tuned:FILE"))


def parse_threads(raw: Any) -> str | int:
    """BLAS threads per cell: "auto" (as many as the free cores and the problem justify,
    measured: bench.sweep.threads) or a count from 1 to 1024."""
    if raw == "auto":
        return raw
    if isinstance(raw, str):            # "2" from a flag is parsed by argparse, not here
        raise bad("threads", raw, "auto or an integer from 1 to 1024")
    return integer(raw, "threads", 1, 1024)


def parse_scheduler(raw: Any) -> str | None:
    """None (every cell in this process, one after another) or a Dask scheduler: local:N,
    cuda or tcp://HOST:PORT (checked here; connected to only when the sweep runs)."""
    if raw is None:
        return None
    local = LOCAL_SCHEDULER.fullmatch(raw) if isinstance(raw, str) else None
    tcp = TCP_SCHEDULER.fullmatch(raw) if isinstance(raw, str) else None
    if (raw == "cuda" or (local and 1 <= int(local[1]) <= 1024)
            or (tcp and 1 <= int(tcp[2]) <= 65535)):
        return raw
    raise bad("scheduler", raw, SCHEDULER_FORMS)


def parse_seeds(raw: Any) -> tuple[int, ...]:
    """A list of seeds, or {count: N, start: S} for S, S+1, ..., S+N-1."""
    if isinstance(raw, dict):
        raw = mapping(raw, "seeds", ("count", "start"), required=("count",))
        start = integer(raw.get("start", 0), "seeds.start", 0)
        return tuple(range(start, start + integer(raw["count"], "seeds.count", 1, 10_000)))
    return items(raw, "seeds", lambda v, p: integer(v, p, 0))


def parse_hyperparameters(raw: Any) -> Hyperparameters:
    """preset: paper | well_posed, then per-model overrides:
    uniform_sum {lam}, non_uniform_sum {w_range: [w_1, w_k]} (lam_i = w_i^2),
    nd_exp / nd {decay} (keep probabilities decay^i)."""
    raw = mapping(raw, "hyperparameters", ("preset",) + MODELS)
    overrides = {}
    for model in MODELS:
        if model in raw:
            overrides[model] = _override(raw[model], f"hyperparameters.{model}", model)
    return Hyperparameters(choice(raw.get("preset", "paper"), "hyperparameters.preset",
                                   HYPER_PRESETS), overrides)


def _override(raw: Any, path: str, model: str) -> dict[str, Any]:
    raw = mapping(raw, path, OVERRIDES[model])
    out: dict[str, Any] = {}
    if "lam" in raw:
        out["lam"] = number(raw["lam"], f"{path}.lam", lambda x: x >= 0, "a number >= 0")
    if "decay" in raw:
        out["decay"] = number(raw["decay"], f"{path}.decay", lambda x: 0 < x <= 1,
                               "a number in (0, 1]")
    if "w_range" in raw:
        pair = items(raw["w_range"], f"{path}.w_range",
                      lambda v, p: number(v, p, lambda x: x >= 0, "a number >= 0"),
                      unique=False)
        if len(pair) != 2:
            raise bad(f"{path}.w_range", raw["w_range"], "[w_1, w_k], two numbers")
        out["w_range"] = list(pair)
    return out
