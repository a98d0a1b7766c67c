"""Time two versions of the code under the same conditions: one sweep, in rounds, alternately.

    lae-bench interleave CONFIG --baseline CMD [--candidate CMD] [--rounds 6] --out DIR

A machine's speed drifts between runs without any change in the code (measured on this
project's 2-core VM: a pure-Python loop 1.5-2x apart from one second to the next, epochs 1.3-1.5x
for a minute after both cores were busy), so two runs made at different times cannot tell a 1.5x
slow-down from the weather. asv's ``continuous`` answers this by interleaving, and so does this:
every round runs the sweep once with each side's command, in ABBA order (baseline first in even
rounds, candidate first in odd ones) so that a drift in one direction hits both sides alike.
Each run starts from an empty run directory, DIR/<side>/round-NN, as ``lae-bench run`` makes
it. ``lae-bench compare DIR/baseline DIR/candidate`` then reads each side's rounds and tests
each cell's round medians, independent samples taken under shared conditions.

A side's command is any that takes ``run CONFIG --out DIR --quiet`` as lae-bench does: the
``lae-bench`` of another installation (a virtual environment of the baseline commit), or
``python -m bench.cli`` with another checkout on its path. Both get the same config file.
Calling again with the same DIR resumes: each run resumes its own directory, and a round already
finished costs nothing.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager, Sequence

from ..errors import UsageError
from ..sweep.config import load_config, preset_names, preset_text
from ..sweep.store import ROUND_PREFIX

SIDES = ("baseline", "candidate")


class SideFailed(RuntimeError):
    """A side's command did not finish its run (its own exit code and last line)."""


def config_file(target: str, out: Path) -> Path:
    """The config both sides run: the file itself, or a preset's text written into ``out`` (so
    that both sides run the same cells even where their presets differ). Validated here."""
    load_config(target)
    if target in preset_names():
        path = out / f"{target}.yaml"
        path.write_text(preset_text(target))
        return path
    return Path(target).resolve()


def round_order(round_index: int) -> tuple[str, str]:
    """ABBA: the baseline first in even rounds, the candidate first in odd ones."""
    return SIDES if round_index % 2 == 0 else SIDES[::-1]


def check_command(side: str, command: Sequence[str]) -> None:
    """UsageError, before any round runs, when a side's program cannot be found."""
    if not command or shutil.which(command[0]) is None:
        raise UsageError(f"--{side}: cannot start {shlex.join(command)!r} (no such program; "
                         "give a command that takes `run CONFIG --out DIR`, e.g. "
                         "/path/to/venv/bin/lae-bench)")


def run_side(command: Sequence[str], side: str, config: Path, run_dir: Path) -> None:
    """One run of the sweep with one side's command; SideFailed with its last line if it
    fails, UsageError if the command does not exist."""
    argv = [*command, "run", str(config), "--out", str(run_dir), "--quiet"]
    try:
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    except OSError as exc:
        raise UsageError(f"--{side}: cannot start {shlex.join(command)!r} "
                         f"({exc.strerror or type(exc).__name__})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SideFailed(f"{side} {run_dir.name}: `{shlex.join(argv)}` exited "
                         f"{proc.returncode}: {last}")


def interleave(config: Path, out: Path, commands: dict[str, Sequence[str]], rounds: int, *,
               conditions: Callable[[str], ContextManager] = lambda side: nullcontext(),
               on_run: Callable[[int, str], None] = lambda round_index, side: None) -> None:
    """Run ``config`` ``rounds`` times with each side's command in ABBA order into
    out/<side>/round-NN. ``conditions(side)``: a context held around each of that side's runs
    (the gate's own check adds machine load there)."""
    for side in SIDES:
        check_command(side, commands[side])
    for r in range(rounds):
        for side in round_order(r):
            on_run(r, side)
            with conditions(side):
                run_side(commands[side], side, config, out / side / f"{ROUND_PREFIX}{r:02d}")
