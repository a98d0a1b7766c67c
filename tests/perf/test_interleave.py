"""``lae-bench interleave``: two versions of the code timed in alternating rounds,
each round a fresh run directory, which ``compare`` reads as one side's independent samples."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.perf.interleave import SideFailed, interleave, round_order

from bench.cli import main

from ..helpers import cli, write_config

# A stand-in for a side's lae-bench: records which side ran which round, in order.
FAKE_SIDE = """
import sys, pathlib
log, side, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[sys.argv.index('--out') + 1])
out.mkdir(parents=True)
with open(log, 'a') as f:
    f.write(side + ' ' + out.parent.name + ' ' + out.name + '\\n')
"""


def fake(log: Path, side: str) -> list[str]:
    return [sys.executable, "-c", FAKE_SIDE, str(log), side]


def test_rounds_alternate_abba_into_fresh_directories(tmp_path):
    log = tmp_path / "log"
    interleave(tmp_path / "c.yaml", tmp_path / "out",
               {"baseline": fake(log, "B"), "candidate": fake(log, "C")}, 3)
    assert log.read_text().split("\n")[:-1] == [
        "B baseline round-00", "C candidate round-00", "C candidate round-01",
        "B baseline round-01", "B baseline round-02", "C candidate round-02"]
    assert [round_order(r)[0] for r in range(4)] == ["baseline", "candidate"] * 2


def test_conditions_wrap_only_the_side_they_name(tmp_path):
    from contextlib import contextmanager
    held = []

    @contextmanager
    def loaded(side):
        held.append(side)
        yield
    interleave(tmp_path / "c.yaml", tmp_path / "out",
               {s: fake(tmp_path / "log", s) for s in ("baseline", "candidate")}, 2,
               conditions=loaded)
    assert held == ["baseline", "candidate", "candidate", "baseline"]


def test_a_failing_side_stops_with_its_last_line(tmp_path):
    failing = [sys.executable, "-c", "import sys; print('boom: bad thing', file=sys.stderr); "
               "sys.exit(3)"]
    with pytest.raises(SideFailed, match="^baseline round-00: .* exited 3: boom: bad thing$"):
        interleave(tmp_path / "c.yaml", tmp_path / "out",
                   {"baseline": failing, "candidate": failing}, 1)
    log = tmp_path / "log"
    with pytest.raises(UsageError, match="--candidate: cannot start '/no/such/lae-bench'"):
        interleave(tmp_path / "c.yaml", tmp_path / "out",
                   {"baseline": fake(log, "B"), "candidate": ["/no/such/lae-bench"]}, 1)
    assert not log.exists()       # refused before any round ran


def test_the_cli_runs_both_sides_and_compare_reads_their_rounds(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", models=["rotation"], optimizers=["sgd_nesterov"],
                          k=[2], max_epochs=40)
    code, out, err = cli("interleave", config, "--baseline",
                         f"{sys.executable} -m bench.cli", "--rounds", "2", "--out",
                         tmp_path / "ab")
    assert code == 0, err
    assert "round 2/2: baseline" in err and "lae-bench compare" in out
    for side in ("baseline", "candidate"):
        assert sorted(p.name for p in (tmp_path / "ab" / side).iterdir()) == [
            "round-00", "round-01"]
    code, out, err = cli("compare", tmp_path / "ab" / "baseline", tmp_path / "ab" / "candidate")
    assert code == 0, out + err


def test_compare_with_rounds_tests_the_rounds(tmp_path):
    # two rounds a side can never be significant: the note says how many rounds were tested
    from bench.analysis.timing import TimingSamples, timing_change
    import numpy as np
    rounds = np.repeat([0, 1], 10)
    base = TimingSamples(np.full(20, 1.0), rounds=rounds)
    slow = TimingSamples(np.full(20, 3.0), rounds=rounds)
    assert "with 2 and 2 rounds" in timing_change(base, slow, 1.5, 0.01).note


def test_bad_interleave_input_is_one_line_and_exit_2(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml")
    code, out, err = cli("interleave", config, "--out", tmp_path / "o", "--baseline",
                         "/no/such/lae-bench")
    assert code == 2 and err.startswith("lae-bench: error: --baseline: cannot start")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:       # argparse's own errors
        main(["interleave", str(config), "--out", str(tmp_path / "o"), "--baseline", "x",
              "--rounds", "0"])
    assert exc.value.code == 2
    assert "'0' is not a positive integer" in capsys.readouterr().err
