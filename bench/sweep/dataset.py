"""A sweep's data: loaded from its config, named by its recipe (``bench.sweep.recipe``)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from lae_core import Dataset, from_samples, mnist, synthetic
from lae_core.data import find_mnist_images

from . import memory
from .config import DataConfig
from .recipe import file_recipe, synthetic_recipe


def load_dataset(data: DataConfig, keep_samples: bool) -> Dataset:
    """The sweep's dataset; the samples are kept only when a model needs them (nd). Refused
    (UsageError, with what would fit) when building it would not fit in memory."""
    memory.check_build(data.m, data.n, keep_samples)
    if data.kind == "synthetic":
        s = data.spectrum
        return synthetic(data.m, data.n, seed=data.seed, kind=s.kind, high=s.high, low=s.low,
                         alpha=s.alpha, values=None if s.values is None else list(s.values),
                         keep_samples=keep_samples)
    if data.kind == "mnist":
        return mnist(data.path, keep_samples=keep_samples)
    return from_samples(np.load(data.path, allow_pickle=False), name=f"npy-{Path(data.path).stem}",
                        center=data.center, keep_samples=keep_samples)


def data_recipe(data: DataConfig) -> str:
    """What a record calls the data of ``data`` (its ``data_id``)."""
    if data.kind == "synthetic":
        return synthetic_recipe(asdict(data))
    if data.kind == "mnist":
        return file_recipe("mnist", find_mnist_images(data.path))
    return file_recipe(data.kind, Path(data.path), centred=data.center)
