"""Verbs ``run``, ``show``, ``info`` and ``presets``: sweeps, their tables and provenance."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lae_core.backend import BACKENDS, DTYPES, BackendError, backend_name, get_namespace

from ..sweep import env
from ..sweep.config import load_config, preset_names, preset_text
from ..errors import EXIT_OK, EXIT_RUN_FAILED
from ..validate import read_yaml
from ..sweep.lock import run_lock
from ..sweep.rundir import RESULTS_ROOT, default_run_dir, discard_results
from ..sweep.runner import Sweep
from ..analysis.table import FORMATS, figure_table, render
from . import EPILOG


def register(verbs) -> None:
    _add_run(verbs)
    show = verbs.add_parser("show", help="the Figure 4 table of a run directory",
                            description="Epochs to the d_align threshold (median [IQR] over "
                            "seeds) and per-epoch time, rows model x optimizer, columns k.")
    show.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    show.add_argument("--format", choices=FORMATS, default="text")
    show.add_argument("--threshold", type=float,
                      help="a d_align level the run recorded (default: its headline, 0.3)")
    show.set_defaults(handler=show_command)
    info = verbs.add_parser("info", help="backend, devices and machine facts a result records")
    info.add_argument("--backend", choices=BACKENDS, default="auto")
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(handler=info_command)
    presets = verbs.add_parser("presets", help="the shipped presets and their expected cost")
    presets.set_defaults(handler=presets_command)


def _add_run(verbs) -> None:
    run = verbs.add_parser(
        "run", help="run a sweep: a preset or a YAML config (default: quick)",
        description="Train every (model, optimizer, k) cell of a sweep, all seeds of a cell as "
        f"one batch, and store one record per run in {RESULTS_ROOT}/<name>-<config hash>/ "
        "(or --out). Running the same command again resumes: finished runs are skipped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("target", nargs="?", default="quick", metavar="PRESET|CONFIG.yaml",
                     help="a preset name (see `lae-bench presets`) or a config file")
    run.add_argument("--out", type=Path, metavar="DIR", help="the run directory")
    run.add_argument("--force-new", action="store_true",
                     help="discard the results already in the run directory and start over")
    run.add_argument("--estimate", action="store_true",
                     help="print the estimated cost of the pending runs and exit")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    run.add_argument("--format", choices=FORMATS, default="text",
                     help="format of the table printed at the end")
    overrides = run.add_argument_group("overrides of the config's keys")
    overrides.add_argument("--backend", choices=BACKENDS)
    overrides.add_argument("--dtype", choices=DTYPES)
    overrides.add_argument("--max-epochs", type=int, metavar="N")
    overrides.add_argument("--seeds", type=int, metavar="N", help="seeds 0, 1, ..., N-1")
    overrides.add_argument("--data-path", type=Path, metavar="PATH",
                           help="data.path: the MNIST directory or the .npy file")
    overrides.add_argument("--scheduler", metavar="SPEC",
                           help="run the cells as Dask tasks: local:N (N worker processes), "
                           "cuda (one worker per GPU) or tcp://HOST:PORT (a running scheduler); "
                           "needs the distributed extra")
    overrides.add_argument("--threads", type=_threads, metavar="N|auto",
                           help="BLAS threads per cell (default auto: the fewest that run the "
                           "cell's main product within 10%% of the fastest on the cores free "
                           "now; recorded in every record)")
    run.set_defaults(handler=run_command)


def _threads(text: str):
    """argparse type of --threads: auto or a positive count."""
    if text == "auto":
        return text
    if text.isdigit() and 1 <= int(text) <= 1024:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not auto or an integer from 1 to 1024")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys that flags replace (validated with the config itself)."""
    keys = ("backend", "dtype", "max_epochs", "scheduler", "threads")
    out: dict[str, Any] = {key: getattr(args, key) for key in keys
                           if getattr(args, key) is not None}
    if args.seeds is not None:
        out["seeds"] = {"count": args.seeds}
    if args.data_path is not None:
        out["data"] = {"path": str(args.data_path.resolve())}
    return out


def run_command(args: argparse.Namespace) -> int:
    config = load_config(args.target, config_overrides(args))
    run_dir = args.out or default_run_dir(config)
    if args.estimate:
        sweep = Sweep(config, run_dir)          # refuses what does not fit, before timing
        print(f"estimating {config.name}: timing a few epochs at three k per curve...",
              file=sys.stderr, flush=True)
        print(sweep.estimate())
        return EXIT_OK
    created = not Path(run_dir).exists()
    try:
        with run_lock(run_dir):     # one run per directory; refused with the holder's pid
            return _run_locked(args, config, run_dir)
    finally:
        if created:                 # a run refused before writing leaves no empty folder
            _remove_if_empty(Path(run_dir))


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:                 # not empty (results were written) or already gone
        pass


def _run_locked(args: argparse.Namespace, config, run_dir: Path) -> int:
    if args.force_new:
        discard_results(run_dir)
    sweep = Sweep(config, run_dir)
    if config.estimate_before_run and not args.quiet:
        print(sweep.estimate(), file=sys.stderr)
    if config.scheduler is None:
        outcome = sweep.run(quiet=args.quiet)
    else:                               # Dask is imported only when a scheduler is named
        from ..sweep.distributed import run_on_cluster
        outcome = run_on_cluster(sweep, quiet=args.quiet)
    print(render(figure_table(run_dir), args.format))
    if not args.quiet:
        print(f"\n{run_dir}: {outcome.summary()}; `lae-bench show {run_dir}` prints this "
              f"table again, `lae-bench plot {run_dir}` draws it, `lae-bench report {run_dir}` "
              "makes one HTML page", file=sys.stderr)
    return EXIT_RUN_FAILED if outcome.errors else EXIT_OK


def show_command(args: argparse.Namespace) -> int:
    print(render(figure_table(args.run_dir, args.threshold), args.format))
    return EXIT_OK


def info_command(args: argparse.Namespace) -> int:
    xp = get_namespace(args.backend)
    facts = {"backend": backend_name(xp), "device": None, "cupy": _cupy_state(),
             **env.collect(xp)}
    facts["device"] = env.device_name(facts)
    if args.format == "json":
        print(json.dumps(facts, indent=1))
    else:
        print("\n".join(f"{key}: {value}" for key, value in _flatten(facts)))
    return EXIT_OK


def _cupy_state() -> str:
    """'usable', or why CuPy cannot run here (what `--backend auto` falls back from)."""
    try:
        get_namespace("cupy")
    except BackendError as exc:
        return str(exc).removeprefix("backend: 'cupy' cannot run here: ")
    return "usable"


def _flatten(facts: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested facts as ("machine.cpu_model", value) pairs."""
    pairs = []
    for key, value in facts.items():
        if isinstance(value, dict) and value:
            pairs += _flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def presets_command(args: argparse.Namespace) -> int:
    for name in preset_names():
        raw = read_yaml(preset_text(name), f"preset {name}")
        print(f"{name:<12} {raw.get('description', '')}\n{'':<12} cost: "
              f"{raw.get('expected_cost', 'unknown')}")
    return EXIT_OK
