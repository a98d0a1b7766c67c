"""The timing gate on synthetic timings (issue 15, finding 4): machine load does not read as a
regression, a real 2x slow-down does, every time."""
from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.compare import compare
from bench.analysis.thresholds import Limits
from bench.analysis.timing import (REGRESSION, SAME, TimingSamples, chunk_medians,
                                   timing_change)

from .helpers import cell_records, write_run

LIMITS = Limits()            # the defaults: time_factor 1.5, alpha 0.01
BLOCKS = 60                  # a cell of 600 epochs evaluated every 10
EPOCH, REFERENCE = 2e-4, 5e-5


def side(rng, *, load: bool = False, slowdown: float = 1.0, blocks: int = BLOCKS
         ) -> TimingSamples:
    """Per-block epoch and reference times. Under load, bursts of other processes slow a
    stretch of neighbouring blocks 1.5x to 4x; a block and the reference product timed right
    beside it see nearly the same load (their own 5 % jitter apart)."""
    factor = np.ones(blocks)
    if load:
        for start in rng.integers(0, blocks, size=blocks // 6):
            factor[start:start + rng.integers(2, 12)] *= rng.uniform(1.5, 4.0)
    jitter = rng.lognormal(0, 0.05, size=(2, blocks))
    return TimingSamples(EPOCH * slowdown * factor * jitter[0],
                         REFERENCE * factor * rng.lognormal(0, 0.05, size=blocks) * jitter[1])


def verdicts(rng, trials: int, **candidate) -> list[str]:
    return [timing_change(side(rng), side(rng, **candidate), LIMITS.time_factor,
                          LIMITS.alpha).verdict for _ in range(trials)]


def raw(samples: TimingSamples) -> TimingSamples:
    return TimingSamples(samples.epoch_s)


def test_load_on_the_candidate_raises_no_false_alarm():
    rng = np.random.default_rng(1)
    assert verdicts(rng, 200, load=True).count(REGRESSION) == 0


def test_raw_epoch_times_would_have_raised_false_alarms():
    # what the gate did before: per-epoch times alone, load included
    rng = np.random.default_rng(1)
    flagged = [timing_change(raw(side(rng)), raw(side(rng, load=True)), LIMITS.time_factor,
                             LIMITS.alpha).verdict for _ in range(200)]
    assert flagged.count(REGRESSION) > 20


@pytest.mark.parametrize("load", [False, True])
def test_a_real_2x_slowdown_is_caught_every_time(load):
    rng = np.random.default_rng(2)
    assert verdicts(rng, 200, load=load, slowdown=2.0) == [REGRESSION] * 200


def test_a_slowdown_within_the_factor_passes():
    rng = np.random.default_rng(3)
    assert verdicts(rng, 50, slowdown=1.3).count(REGRESSION) == 0


def test_too_few_blocks_are_never_significant():
    rng = np.random.default_rng(4)
    change = timing_change(side(rng, blocks=4), side(rng, blocks=4, slowdown=3.0),
                           LIMITS.time_factor, LIMITS.alpha)
    assert change.verdict == SAME and "not significant" in change.note


def test_chunks_are_contiguous_medians():
    np.testing.assert_array_equal(chunk_medians(np.arange(16.0), 8), np.arange(0.5, 16, 2))
    assert chunk_medians(np.arange(3.0), 8).size == 3


def _records(samples: TimingSamples, **fields) -> list[dict]:
    return [dict(r, reference_times_s=list(samples.reference_s))
            for r in cell_records([300] * 3, epoch_times=samples.epoch_s, **fields)]


def test_compare_uses_the_reference_times_the_records_carry(tmp_path):
    rng = np.random.default_rng(5)
    base = write_run(tmp_path / "base", _records(side(rng)))
    busy = write_run(tmp_path / "busy", _records(side(rng, load=True)))
    slow = write_run(tmp_path / "slow", _records(side(rng, load=True, slowdown=2.0)))
    busy_check = compare(base, busy).cells[0].check("time")
    assert busy_check.verdict == SAME and busy_check.note.startswith("load-adjusted (raw x")
    slow_check = compare(base, slow).cells[0].check("time")
    assert slow_check.verdict == REGRESSION and slow_check.ratio == pytest.approx(2, rel=0.15)
    # a side without reference times: raw times, and the gate says so
    plain = write_run(tmp_path / "plain", cell_records([300] * 3, epoch_times=side(rng).epoch_s))
    assert "load is not cancelled" in compare(plain, busy).cells[0].check("time").note
