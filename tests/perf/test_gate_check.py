"""The gate check's slowed candidate is a real version of the code: a copy of the source tree
whose epoch loop trains every block twice, run through the same CLI as any candidate."""
from __future__ import annotations

import subprocess

import pytest

from bench.perf.gate_check import BLOCK_LINE, candidate_command

from ..helpers import records, write_config


@pytest.mark.slow   # two sweeps in child processes
def test_the_slowed_candidate_trains_every_block_twice(tmp_path):
    config = write_config(tmp_path / "c.yaml", models=["rotation"], optimizers=["sgd_nesterov"],
                          k=[2], seeds=[0], thresholds=[0.3])
    epochs = {}
    for slow in (False, True):
        run_dir = tmp_path / f"slow-{slow}"
        subprocess.run([*candidate_command(slow, tmp_path), "run", str(config), "--out",
                        str(run_dir), "--quiet"], check=True, capture_output=True,
                       cwd=tmp_path)
        epochs[slow] = records(run_dir)[0]["epochs_to"]["0.3"]
    # twice the training per block: the threshold is reached after about half the epochs
    assert epochs[True] == pytest.approx(epochs[False] / 2, abs=10)
    loop = (tmp_path / "slowed-source" / "lae_core" / "train.py").read_text()
    assert loop.count(BLOCK_LINE) == 2
