"""The prepared GPU check runs end to end in its dry mode (CPU only), so that it cannot rot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # end to end, several seconds; .ci/run runs it
def test_the_gpu_check_script_runs_dry(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "perf" / "gpu_check.sh"), str(out), "--dry"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("info.json", "parity.json", "speed.json", "fig4.md", "fig4.png",
                 "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] and summary["fig4"]["exit_code"] == 0
    # two different namespaces (NumPy and array-api-strict) from the same seeds agree
    assert summary["parity"]["all_within_one_eval"]
    assert summary["parity"]["max_d_align_diff"] < 1e-9
    speed = json.loads((out / "speed.json").read_text())
    assert {"numpy-float32", "array_api_strict-float32", "array_api_strict-float64",
            "official_h200"} <= set(speed)
    assert len(speed["official_h200"]) == 48          # every cell of the official times
    targets = summary["targets"]
    assert set(targets) >= {"spectral_sgd_epoch_s", "adam_epoch_s", "k500_epoch_s",
                            "nd_bound_ratio", "speedup_over_official", "speedup_over_numpy",
                            "fig4_seconds", "batch64_throughput_gain"}
    assert targets["fig4_seconds"]["measured"] == summary["fig4"]["wall_time_s"]
    # the dry sizes have no k = 500: that target says 'not measured', never a guess
    assert targets["k500_epoch_s"] == {"measured": None, "target": 150e-6, "met": None}
    assert len(list(out.glob("*"))) <= 8 + 1      # the files, and the dry run's work folder
