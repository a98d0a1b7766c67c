"""Plots: the numbers behind each figure, the files written, and clean skips."""
from __future__ import annotations

import numpy as np
import pytest

from bench.cli import main
from bench.analysis.plotkit import spaced_labels
from bench.analysis.plots import (alignment_plots, all_plots, decoder_image_plots,
                                  learning_curve_plots, scaling_plots, speedup_plots,
                                  timing_plots)
from bench.sweep.store import records_frame

from ..helpers import (FIG4_KS, FIG4_PUBLISHED, cell_records, cosine_basis, decoder_arrays,
                      metric_history, write_run)


def seed_epochs(records, model, optimizer, k):
    return sorted(r["epochs_to"]["0.3"] for r in records
                  if (r["model"], r["optimizer"], r["k"]) == (model, optimizer, k))


def test_scaling_plot_draws_seed_medians_up_to_the_published_failure(fig4_frame, fig4_records):
    (plot,) = scaling_plots(fig4_frame)
    assert plot.name == "figure4_scaling"
    for (model, optimizer), published in FIG4_PUBLISHED.items():
        curve = plot.series[f"{model}/{optimizer}"]
        reached = [k for k, v in zip(FIG4_KS, published) if v is not None]
        assert curve["k"] == reached
        assert curve["failed_at"] == (FIG4_KS[len(reached)] if len(reached) < 10 else None)
        for k, median in zip(curve["k"], curve["median"]):
            assert median == seed_epochs(fig4_records, model, optimizer, k)[1]  # middle of 3


def test_the_band_is_the_interquartile_range_and_censored_seeds_count_as_infinite(tmp_path):
    run = write_run(tmp_path / "run", cell_records([100, 200, 300, 400, 500], k=2)
                    + cell_records([100, 200, None, None, None], k=5)
                    + cell_records([100, 200, 300, None, None], k=10))
    curve = scaling_plots(records_frame(run))[0].series["rotation/sgd_nesterov"]
    assert curve["k"] == [2]                     # k = 5: the median seed did not reach it
    assert (curve["q25"], curve["median"], curve["q75"]) == ([200], [300], [400])
    assert curve["failed_at"] == 5


def test_fitted_slope_is_shown_in_the_legend(tmp_path):
    epochs = {4: 80, 16: 640, 64: 5120}   # 10 k^1.5, exact integers
    records = [r for k, e in epochs.items() for r in cell_records([e], k=k)]
    (plot,) = scaling_plots(records_frame(write_run(tmp_path / "run", records)), fit=True)
    slope = plot.series["rotation/sgd_nesterov"]["slope"]
    assert slope == pytest.approx(1.5, abs=1e-3)
    legend = [t.get_text() for t in plot.figure.axes[0].get_legend().get_texts()]
    assert "rotation (Nesterov SGD), slope 1.50" in legend


def test_a_cell_swept_over_learning_rates_is_drawn_at_its_best_rate(tmp_path):
    run = write_run(tmp_path / "run", cell_records([2000] * 3, k=2, lr=1e-4)
                    + cell_records([500] * 3, k=2, lr=1e-3))
    assert scaling_plots(records_frame(run))[0].series["rotation/sgd_nesterov"]["median"] == [500]


def test_timing_and_speedup_series(fig4_run, fig4_gpu_run):
    frame = records_frame([fig4_run, fig4_gpu_run])
    names = [p.name for p in scaling_plots(frame)]
    assert len(names) == 2 and all("numpy" in n or "cupy" in n for n in names)
    (timing,) = timing_plots(frame)
    cpu = timing.series["rotation/sgd_nesterov/numpy"]
    epochs = scaling_plots(frame)[1].series["rotation/sgd_nesterov"]["median"]
    assert np.allclose(cpu["time_to_threshold_s"], np.multiply(epochs, cpu["time_per_epoch_s"]))
    (speedup,) = speedup_plots(frame)
    gpu = timing.series["rotation/sgd_nesterov/cupy"]
    assert np.allclose(speedup.series["rotation/sgd_nesterov"]["speedup"],
                       np.divide(cpu["time_per_epoch_s"], gpu["time_per_epoch_s"]))


def test_speedup_needs_both_backends(fig4_frame):
    (plot,) = speedup_plots(fig4_frame)
    assert plot.figure is None and "cupy" in plot.skipped


def history_run(tmp_path, side=4, k=3, weights=True):
    """Two models at k with histories; nd_exp recovers U_k up to a signed permutation."""
    Uk = cosine_basis(side, k)
    signed_permutation = np.eye(k)[:, ::-1] * np.array([1.0, -1.0, 1.0])
    records, histories = [], {}
    for model, tau in (("nd_exp", 300.0), ("vae", 900.0)):
        for record in cell_records([500, 520], model=model, k=k, m=side * side):
            history = metric_history(record["epochs"], tau)
            if weights:
                history.update(decoder_arrays(Uk, 2.0 * signed_permutation))
            histories[record["key"]] = history
            records.append(record)
    return write_run(tmp_path / "hist", records, histories=histories), signed_permutation


def test_learning_curves_come_from_the_stored_histories(tmp_path):
    run, _ = history_run(tmp_path)
    (plot,) = learning_curve_plots(records_frame(run))
    assert plot.name == "learning_curves-k3"
    runs = plot.series["nd_exp/sgd_nesterov"]
    assert [r["seed"] for r in runs] == [0, 1]
    expected = metric_history(500, 300.0)
    assert np.array_equal(runs[0]["epoch"], expected["epoch"])
    assert np.allclose(runs[0]["d_align"], expected["d_align"])


def test_alignment_heatmap_and_decoder_images_from_the_weight_arrays(tmp_path):
    run, signed_permutation = history_run(tmp_path)
    frame = records_frame(run)
    (heatmaps,) = alignment_plots(frame)
    assert np.allclose(heatmaps.series["nd_exp/sgd_nesterov"]["alignment"], signed_permutation)
    (images,) = decoder_image_plots(frame)
    drawn = images.series["vae/sgd_nesterov"]["images"]
    assert drawn.shape == (3, 4, 4)
    # column 0 of the signed permutation picks eigenvector 3 (index 2) with sign +1
    assert np.allclose(drawn[0].ravel(), 2.0 * cosine_basis(4, 3)[:, 2])


def test_figures_needing_histories_or_weights_skip_with_a_reason(tmp_path, fig4_frame):
    plots = learning_curve_plots(fig4_frame) + alignment_plots(fig4_frame)
    assert all(p.figure is None and "history" in p.skipped for p in plots)
    run, _ = history_run(tmp_path, weights=False)
    (plot,) = decoder_image_plots(records_frame(run))
    assert plot.figure is None and "W2_final" in plot.skipped


def test_decoder_images_need_square_inputs(tmp_path):
    run, _ = history_run(tmp_path)
    frame = records_frame(run).assign(m=15)
    (plot,) = decoder_image_plots(frame)
    assert plot.figure is None and "m = 15" in plot.skipped


def test_crowded_k_labels_are_thinned_but_keep_the_largest():
    assert spaced_labels(list(FIG4_KS)) == [2, 5, 10, 20, 50, 100, 200, 500]


@pytest.mark.slow  # end to end, several seconds; .ci/run runs it
def test_plot_command_writes_png_and_svg_of_every_drawn_figure(tmp_path, fig4_run, capsys):
    run, _ = history_run(tmp_path)
    out = tmp_path / "plots"
    assert main(["plot", str(fig4_run), str(run), "--out", str(out), "--fit"]) == 0
    drawn = [p for p in all_plots([fig4_run, run]) if p.figure is not None]
    for plot in drawn:
        for ext in ("png", "svg"):
            assert (out / f"{plot.name}.{ext}").stat().st_size > 1000
    assert "skipped speedup" in capsys.readouterr().out


def test_an_unrecorded_threshold_is_a_usage_error(fig4_run, capsys):
    assert main(["plot", str(fig4_run), "--threshold", "0.2"]) == 2
    assert "d_align 0.2 was not recorded in the results (recorded: 0.3)" in capsys.readouterr().err
