"""The ``hessian`` verb: Hessian conditioning at the optimum against k, beside measured epochs
(``bench.perf.hessian``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..paths import output_dir

DEFAULT_BUDGET_S = 60.0
DEFAULT_OUT = Path("results/hessian")


def k_list(text: str) -> list[int]:
    """argparse type: '2,5,10' -> [2, 5, 10], every k >= 2 (a rotation needs two units)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "integers") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: every k must be an integer >= 2")
    return sorted(set(values))


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "hessian", help="Hessian condition number at the optimum against k, beside measured "
        "epochs", description="For non_uniform_sum and nd_exp at their closed-form optimum "
        "(the config's data and hyperparameters; the well_posed preset where the config's "
        "have no minimum): the Rayleigh-quotient lower bound on the condition number (radial "
        "against rotation direction) for every k, and the exact extreme eigenvalues by "
        "Lanczos on Hessian-vector products while the time budget lasts. With --runs, the "
        "measured epochs to threshold of a run directory beside them; log-log slopes of "
        "both. Writes hessian.csv, hessian.json and a plot.")
    p.add_argument("target", metavar="PRESET|CONFIG.yaml", nargs="?", default="fig4",
                   help="whose data and hyperparameters (default: fig4)")
    p.add_argument("--k", type=k_list, metavar="K,K,...",
                   help="latent sizes (default: the config's k grid, those >= 2)")
    p.add_argument("--models", metavar="MODEL,...",
                   help="default: the config's models that have an isolated minimum, else "
                   "non_uniform_sum,nd_exp")
    p.add_argument("--runs", metavar="RUN_DIR", help="a run directory whose measured epochs "
                   "to go beside the prediction")
    p.add_argument("--threshold", type=float, default=0.3,
                   help="d_align level of the measured epochs (default 0.3)")
    p.add_argument("--budget", type=positive_seconds, default=DEFAULT_BUDGET_S,
                   metavar="SECONDS", help=f"time for Lanczos over all k and models (default "
                   f"{DEFAULT_BUDGET_S:g} s); the bounds are always computed")
    p.add_argument("--out", metavar="DIR", help=f"where to write (default: {DEFAULT_OUT})")
    p.set_defaults(handler=hessian_command)


def chosen_models(args: argparse.Namespace, config_models: tuple[str, ...]) -> list[str]:
    from lae_core.hessian import HESSIAN_MODELS

    if args.models is None:
        return [m for m in config_models if m in HESSIAN_MODELS] or list(HESSIAN_MODELS)
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in HESSIAN_MODELS]
    if bad or not models:
        raise UsageError(f"--models: {args.models!r} is not allowed; expected a "
                         f"comma-separated list of {', '.join(HESSIAN_MODELS)}")
    return models


def hessian_command(args: argparse.Namespace) -> int:
    from ..perf import hessian
    from ..sweep.config import load_config
    from ..sweep.dataset import load_dataset

    config = load_config(args.target)
    ks = args.k or [k for k in config.k if k >= 2]
    if not ks or max(ks) > config.data.m:
        raise UsageError(f"--k: {ks} must lie in 2..m = {config.data.m}")
    models = chosen_models(args, config.models)
    measured = (hessian.measured_epochs(args.runs, args.threshold)
                if args.runs is not None else None)
    out = output_dir(Path(args.out) if args.out else DEFAULT_OUT, "--out")
    print(f"hessian: bounds for {len(models) * len(ks)} (model, k); Lanczos within "
          f"{args.budget:g} s in all, k ascending")
    from lae_core.backend import get_namespace

    dataset = load_dataset(config.data, keep_samples=False)
    # the products run on the config's backend (CuPy where a GPU is), Lanczos on the host
    rows = hessian.conditioning(config, dataset, models, ks, args.budget,
                                 xp=get_namespace(config.backend))
    fitted = hessian.slopes(rows, measured)
    print(hessian.render_text(rows, measured, fitted, args.budget, args.threshold), end="")
    for path in hessian.write_outputs(rows, measured, fitted, args.threshold, out):
        print(f"wrote {path}")
    return 0
