"""The timing gate on synthetic timings (issue 15, finding 4): machine load does not read as a
regression (pre-empted blocks are left out; a machine running at another speed, which the
same-run reference shows, is not judged), a real 2x slow-down is caught every time."""
from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.compare import compare
from bench.analysis.thresholds import Limits, parse_thresholds
from bench.analysis.timing import (NOT_COMPARED, REGRESSION, SAME, TimingSamples,
                                   chunk_medians, timing_change)

from .helpers import cell_records, write_run

LIMITS = Limits()            # the defaults: time_factor 1.5, alpha 0.01
BLOCKS = 60                  # a cell of 600 epochs evaluated every 10
EPOCH, REFERENCE = 2e-4, 5e-5


def side(rng, *, preempted: float = 0.0, machine: float = 1.0, slowdown: float = 1.0,
         blocks: int = BLOCKS) -> TimingSamples:
    """Per-block epoch times, reference times and CPU shares of one side.

    preempted: the fraction of blocks that other processes pre-empt (late by 1.5x to 6x, CPU
    share the inverse); machine: a slower machine as a whole (a VM's host, memory bus, clock)
    that takes no CPU time away, slowing the epoch and the reference product; slowdown: a real
    change of the epoch's work."""
    late = np.where(rng.random(blocks) < preempted, rng.uniform(1.5, 6.0, blocks), 1.0)
    jitter = rng.lognormal(0, 0.05, size=(2, blocks))
    return TimingSamples(EPOCH * slowdown * machine * late * jitter[0],
                         REFERENCE * machine * jitter[1],
                         np.minimum(1.0, rng.uniform(0.95, 1.02, blocks) / late))


def verdicts(rng, trials: int, **candidate) -> list[str]:
    return [timing_change(side(rng), side(rng, **candidate), LIMITS.time_factor,
                          LIMITS.alpha).verdict for _ in range(trials)]


def raw(samples: TimingSamples) -> TimingSamples:
    return TimingSamples(samples.epoch_s)


def test_load_on_the_candidate_raises_no_false_alarm():
    rng = np.random.default_rng(1)
    assert verdicts(rng, 200, preempted=0.6) == [SAME] * 200


def test_a_machine_running_at_another_speed_is_not_judged():
    rng = np.random.default_rng(1)
    found = verdicts(rng, 200, preempted=0.3, machine=1.6)
    assert found == [NOT_COMPARED] * 200
    change = timing_change(side(rng), side(rng, machine=1.6), 1.5, 0.01)
    assert "not timed under the same conditions" in change.note
    assert change.reference_ratio == pytest.approx(1.6, rel=0.1)


def test_a_machine_too_busy_to_time_is_said_not_judged():
    rng = np.random.default_rng(1)
    found = verdicts(rng, 50, preempted=0.97, slowdown=2.0)
    assert REGRESSION not in found and found.count(NOT_COMPARED) >= 45
    change = timing_change(side(rng), side(rng, preempted=1.0), 1.5, 0.01)
    assert change.verdict == NOT_COMPARED and "candidate timed on a busy machine" in change.note


def test_raw_epoch_times_would_have_raised_false_alarms():
    # what the gate did before: every block's raw per-epoch time, load included
    rng = np.random.default_rng(1)
    flagged = [timing_change(raw(side(rng)), raw(side(rng, preempted=0.6)),
                             LIMITS.time_factor, LIMITS.alpha).verdict for _ in range(200)]
    assert flagged.count(REGRESSION) > 100


@pytest.mark.parametrize("preempted, machine", [(0.0, 1.0), (0.5, 1.0), (0.3, 1.15)])
def test_a_real_2x_slowdown_is_caught_every_time(preempted, machine):
    rng = np.random.default_rng(2)
    assert verdicts(rng, 200, preempted=preempted, machine=machine,
                    slowdown=2.0) == [REGRESSION] * 200


def test_a_slowdown_within_the_factor_passes():
    rng = np.random.default_rng(3)
    assert verdicts(rng, 50, slowdown=1.3).count(REGRESSION) == 0


def test_too_few_blocks_are_never_significant():
    rng = np.random.default_rng(4)
    change = timing_change(raw(side(rng, blocks=4)), raw(side(rng, blocks=4, slowdown=3.0)),
                           LIMITS.time_factor, LIMITS.alpha)
    assert change.verdict == SAME and "not significant" in change.note


def test_chunks_are_contiguous_medians():
    np.testing.assert_array_equal(chunk_medians(np.arange(16.0), 8), np.arange(0.5, 16, 2))
    assert chunk_medians(np.arange(3.0), 8).size == 3


def _records(samples: TimingSamples, **fields) -> list[dict]:
    return [dict(r, reference_times_s=list(samples.reference_s),
                 block_cpu_shares=list(samples.cpu_share))
            for r in cell_records([300] * 3, epoch_times=samples.epoch_s, **fields)]


def test_compare_uses_the_shares_and_reference_times_the_records_carry(tmp_path):
    rng = np.random.default_rng(5)
    base = write_run(tmp_path / "base", _records(side(rng)))
    busy = write_run(tmp_path / "busy", _records(side(rng, preempted=0.6)))
    slow = write_run(tmp_path / "slow", _records(side(rng, preempted=0.5, slowdown=2.0)))
    busy_check = compare(base, busy).cells[0].check("time")
    assert busy_check.verdict == SAME and busy_check.note.startswith("clean blocks 60/60 and")
    slow_check = compare(base, slow).cells[0].check("time")
    assert slow_check.verdict == REGRESSION and slow_check.ratio == pytest.approx(2, rel=0.15)
    # a side without reference times: raw times, and the gate says so
    plain = write_run(tmp_path / "plain", cell_records([300] * 3, epoch_times=side(rng).epoch_s))
    assert "load not accounted for" in compare(plain, busy).cells[0].check("time").note


def test_the_reference_tolerance_is_a_threshold(tmp_path):
    rng = np.random.default_rng(6)
    base = write_run(tmp_path / "base", _records(side(rng)))
    other = write_run(tmp_path / "other", _records(side(rng, machine=1.6)))
    assert compare(base, other).cells[0].check("time").verdict == NOT_COMPARED
    loose = parse_thresholds({"default": {"reference_factor": 2.0}})
    assert compare(base, other, loose).cells[0].check("time").verdict == REGRESSION
