"""compare's cell identity: every config field that changes the numbers.
Cells that differ in one are different experiments; what differs is listed at the top;
--match-by compares across a field on purpose."""
from __future__ import annotations

import json

import pytest

from bench.analysis.compare import (FINGERPRINT_NOTE, IMPROVEMENT, REGRESSION, compare)
from bench.analysis.compare_render import RENDERERS
from bench.cli import main
from bench.errors import EXIT_NOTHING_COMPARABLE, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE

from ..helpers import cell_records, write_run


@pytest.fixture
def pair(tmp_path):
    def make(base, cand):
        return write_run(tmp_path / "baseline", base), write_run(tmp_path / "candidate", cand)
    return make


@pytest.mark.parametrize("field, base_value, cand_value", [
    ("hyperparameters", {"lam": [0.01, 0.04]}, {"lam": [0.01, 0.09]}),
    ("max_epochs", 50_000, 2_000),
    ("eval_every", 10, 20),
    ("thresholds", [0.3], [0.5, 0.3]),
    ("lr", 1e-4, 1e-3),
])
def test_cells_differing_in_an_identity_field_are_not_compared(pair, field, base_value,
                                                               cand_value):
    dirs = pair(cell_records([300] * 3, **{field: base_value}),
                cell_records([900] * 3, **{field: cand_value}))
    comparison = compare(*dirs)
    assert comparison.exit_code == EXIT_NOTHING_COMPARABLE
    assert [d.field for d in comparison.differences] == [field]
    text = RENDERERS["text"](comparison)
    assert f"differs between the two sets:\n  {field}" in text
    assert "different experiments, not compared" in text


def test_a_smaller_cap_is_said_at_the_top_and_can_be_matched_across(pair):
    dirs = pair(cell_records([300, 310, 320], max_epochs=50_000),
                cell_records([300, 310, None], max_epochs=2_000))
    text = RENDERERS["text"](compare(*dirs))
    assert "max_epochs: 50000 (baseline) vs 2000 (candidate)" in text
    assert "--match-by max_epochs" in text
    matched = compare(*dirs, match_by=["max_epochs"])
    assert matched.exit_code == EXIT_RUN_FAILED          # seed 2 now capped
    header = RENDERERS["text"](matched).split("\n\n")[0]
    assert "max_epochs: 50000 (baseline) vs 2000 (candidate): matched across" in header
    assert "max_epochs=50000 -> 2000" in RENDERERS["text"](matched)


def test_match_by_lr_compares_two_learning_rates_deliberately(pair, capsys):
    base, cand = pair(cell_records([300] * 3, lr=1e-4), cell_records([150] * 3, lr=1e-3))
    assert main(["compare", str(base), str(cand)]) == EXIT_NOTHING_COMPARABLE
    assert main(["compare", str(base), str(cand), "--match-by", "lr"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "lr=0.0001 -> 0.001" in out and "improvements (1)" in out
    assert main(["compare", str(base), str(cand), "--match-by", "seed"]) == EXIT_USAGE


def test_match_by_refuses_to_pool_several_cells_of_one_side(pair):
    base = cell_records([300] * 3, lr=1e-4) + cell_records([200] * 3, lr=1e-3)
    with pytest.raises(ValueError, match="several cells"):
        compare(*pair(base, cell_records([300] * 3, lr=1e-2)), match_by=["lr"])


def test_a_different_seed_count_is_listed(pair):
    comparison = compare(*pair(cell_records([300] * 3), cell_records([300] * 5, batch_size=5)))
    (difference,) = comparison.differences
    assert difference.field == "seeds" and not difference.in_identity
    assert len(comparison.cells) == 1


def test_data_built_elsewhere_is_a_note_not_another_cell(pair):
    comparison = compare(*pair(cell_records([300] * 3, data_fingerprint="0a1b2c3d4e"),
                               cell_records([300] * 3, data_fingerprint="ffffffffff")))
    assert comparison.exit_code == EXIT_OK and len(comparison.cells) == 1
    assert any(FINGERPRINT_NOTE in note for note in comparison.notes)
    assert FINGERPRINT_NOTE in RENDERERS["markdown"](comparison)


def test_a_cell_that_errored_before_training_still_matches_its_baseline(pair):
    errored = [dict(r, status="error", error="boom", hyperparameters={}, epochs_to={"0.3": None})
               for r in cell_records([None] * 3)]
    comparison = compare(*pair(cell_records([300] * 3, hyperparameters={"lam": [0.1, 0.2]}),
                               errored))
    assert len(comparison.cells) == 1 and not comparison.only_in_candidate
    assert comparison.cells[0].check("status").verdict == REGRESSION


def test_json_lists_the_differences(pair):
    comparison = compare(*pair(cell_records([300] * 3, lr=1e-4),
                               cell_records([100] * 3, lr=1e-3)), match_by=["lr"])
    data = json.loads(RENDERERS["json"](comparison))
    assert data["match_by"] == ["lr"] and data["differences"][0]["field"] == "lr"
    assert comparison.findings(IMPROVEMENT)
