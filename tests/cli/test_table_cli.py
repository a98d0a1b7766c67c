"""`show` (the Figure 4 table in four formats), `info`, `presets` and the default verb."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pandas as pd
import pytest

import bench.cli.run
from bench.cli import main
from bench.analysis.table import epochs_text

from ..helpers import cli


def test_show_text_has_both_tables_in_sweep_order(smoke_run):
    code, out, _ = cli("show", smoke_run[0])
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert header.split() == ["model", "optimizer", "k=2", "k=4"]
    rows = [line.split()[:2] for line in lines if line.split()[:1] in (["rotation"], ["nd"],
                                                                       ["non_uniform_sum"])]
    assert rows[:6] == [["rotation", "sgd_nesterov"], ["rotation", "adam"],
                        ["non_uniform_sum", "sgd_nesterov"], ["non_uniform_sum", "adam"],
                        ["nd", "sgd_nesterov"], ["nd", "adam"]]
    assert "per-epoch time, ms" in out and len(rows) == 12


def test_show_csv_and_json_have_one_row_per_cell(smoke_run):
    frame = pd.read_csv(io.StringIO(cli("show", smoke_run[0], "--format", "csv")[1]))
    assert len(frame) == 12 and (frame["runs"] == 2).all()
    assert set(frame["k"]) == {2, 4} and frame["epoch_time_s"].gt(0).all()
    data = json.loads(cli("show", smoke_run[0], "--format", "json")[1])
    assert data["threshold"] == 0.3 and len(data["cells"]) == 12
    for cell in data["cells"]:
        assert (cell["epochs_median"] is None) == cell["censored"]


def test_show_markdown_and_other_threshold(smoke_run):
    out = cli("show", smoke_run[0], "--format", "markdown", "--threshold", "0.5")[1]
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| model | optimizer | k=2 | k=4 |" and table[1].startswith("| --- |")
    assert "d_align <= 0.5" in out


def test_show_refuses_what_it_cannot_show(smoke_run, tmp_path):
    code, _, err = cli("show", smoke_run[0], "--threshold", "0.2")
    assert code == 2 and "0.2 was not recorded" in err
    assert cli("show", tmp_path)[0] == 2


def _row(**fields):
    base = dict(skipped=False, runs=3, errors=0, diverged=0, censored=False,
                epochs_median=3100.0, epochs_q25=2800.0, epochs_q75=3400.0, max_epochs=50000)
    return SimpleNamespace(**{**base, **fields})


INF = float("inf")


@pytest.mark.parametrize("fields, text", [
    ({"runs": 5}, "3100 [2800-3400]"),
    ({"runs": 5, "epochs_q75": INF}, "3100 [2800->50000]"),
    ({"seed_epochs": (2800.0, 3100.0, 3400.0)}, "3100 (2800, 3100, 3400)"),
    ({"runs": 2, "epochs_median": 520.0, "seed_epochs": (240.0, 800.0)}, "520 (240, 800)"),
    ({"censored": True, "epochs_median": INF, "diverged": 1, "seed_epochs": (300.0, INF, INF)},
     ">50000 (300, >50000, >50000; 1 diverged)"),
    ({"censored": True, "diverged": 3}, "diverged"),
    ({"errors": 1, "seed_epochs": (2800.0, 3400.0)}, "3100 (2800, 3400; 1 error)"),
    ({"errors": 3, "censored": True}, "error"),
    ({"skipped": True}, "fails"),
    ({"runs": 1, "epochs_q25": 3100.0, "epochs_q75": 3100.0}, "3100"),
])
def test_epochs_cell_text(fields, text):
    assert epochs_text(_row(**fields)) == text


def test_info_reports_what_a_manifest_records():
    code, out, _ = cli("info", "--format", "json")
    facts = json.loads(out)
    assert code == 0 and facts["backend"] in ("numpy", "cupy")
    assert facts["machine"]["cores"] >= 1 and facts["packages"]["numpy"]
    assert "threads" in facts["blas"] and facts["device"]
    assert "machine.cpu_model: " in cli("info")[1]


def test_presets_lists_names_descriptions_and_costs():
    out = cli("presets")[1]
    for name in ("smoke", "quick", "nightly-cpu", "fig4", "mnist"):
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert out.count("cost: ") == len([line for line in out.splitlines() if line[:1] != " "])


def test_run_without_a_target_runs_the_quick_preset_and_no_verb_runs_nothing(monkeypatch):
    seen = []
    monkeypatch.setattr(bench.cli.run, "run_command", lambda args: seen.append(args.target))
    assert main(["run"]) == 0 and seen == ["quick"]
    assert main([]) == 2 and seen == ["quick"]          # a bare command prints its usage


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "2    the input or the environment is wrong" in capsys.readouterr().out
