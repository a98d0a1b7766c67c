"""Fixtures of the analysis tests: run directories written record by record."""
from __future__ import annotations

import pytest

from bench.sweep.store import records_frame

from ..helpers import GPU, figure4_records, write_run

SEEDS = 3   # odd: the median of the seeds is one of them


@pytest.fixture(scope="session")
def fig4_records() -> list[dict]:
    return figure4_records(seeds=SEEDS)


@pytest.fixture(scope="session")
def fig4_run(tmp_path_factory, fig4_records):
    """A CPU run resembling the published Figure 4 (3 seeds per cell)."""
    return write_run(tmp_path_factory.mktemp("runs") / "fig4", fig4_records)


@pytest.fixture(scope="session")
def fig4_gpu_run(tmp_path_factory):
    """The same cells timed on a GPU (cupy), for the speed-up plot."""
    return write_run(tmp_path_factory.mktemp("runs") / "fig4_gpu",
                     figure4_records(seeds=SEEDS, backend="cupy", device=GPU, rng_seed=1),
                     gpu={"gpu_name": GPU})


@pytest.fixture(scope="session")
def fig4_frame(fig4_run):
    return records_frame(fig4_run)
