"""lae_core: backend-agnostic linear autoencoders (six objectives, three formulations,
torch-exact optimizers, alignment metrics), batched over runs. See README.md.

Layer: the lowest one; nothing here imports ``bench`` (tests/test_layers.py holds this)."""
from .backend import BackendError, cupy_available, get_namespace
from .data import Dataset, DataError, from_samples, mnist, synthetic
from .hyper import preset_hyperparameters
from .objectives import ALL_MODELS, MODELS, get_objective
from .operators import FORMULATIONS
from .optim import OPTIMIZERS, get_optimizer
from .replay import replay
from .train import (BatchResult, ConfigurationError, RunResult, Schedule, choose_formulation,
                    initial_weights, run_batch)

__version__ = "0.1.0"

__all__ = [
    "ALL_MODELS", "BackendError", "BatchResult", "ConfigurationError", "DataError", "Dataset", "FORMULATIONS",
    "MODELS", "OPTIMIZERS", "RunResult", "Schedule", "choose_formulation", "cupy_available",
    "from_samples", "get_namespace", "get_objective", "get_optimizer", "initial_weights",
    "mnist", "preset_hyperparameters", "replay", "run_batch", "synthetic",
]
