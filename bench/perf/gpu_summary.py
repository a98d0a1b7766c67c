"""The GPU check's summary: every GPU target of issues 19 and 20, measured or not, and why not.

Read from whatever files the steps left (``gpu_check``) and the steps' exit codes, times and
caps as ``gpu_check.sh`` saw them; it is rewritten after every step, so a check cut anywhere
still leaves a summary. A target is {"measured", "target", "met"} and, where nothing was
measured, "not_measured": which step did not finish and why (never a guess).

Standard library only: the shell calls it between steps, and it must start in a blink.
    python -m bench.perf.gpu_summary OUT [--steps STEP:EXIT:SECONDS:CAP,...]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

# Which step's file each target is read from
TARGETS = {
    # issue 19: the check itself
    "check_seconds": ("all", 300.0, "at_most"),
    "graph_bitwise_vs_eager": ("smoke", 3, "at_least"),
    "graph_captured": ("smoke", 3, "at_least"),
    "parity_within_one_eval": ("parity", 12, "at_least"),
    "tests_pass": ("tests", 0, "at_most"),
    # issue 20: float32, m = 1000, n = 5000
    "sgd_epoch_s": ("speed", 60e-6, "at_most"),
    "adam_epoch_s": ("speed", 100e-6, "at_most"),
    "k500_epoch_s": ("speed", 150e-6, "at_most"),
    "nd_bound_ratio": ("speed", 1.3, "at_most"),
    "speedup_over_official": ("speed", 10.0, "at_least"),
    "speedup_over_numpy": ("speed", 1.0, "at_least"),
    "batch64_throughput_gain": ("speed", 20.0, "at_least"),
    "fig4_seconds": ("fig4", 120.0, "at_most"),
}
STEP_ORDER = ("info", "smoke", "speed", "parity", "fig4", "tests")


def read_rows(path: Path) -> list[dict]:
    """A JSON Lines file's rows; a line cut off mid-write (the step's cap) is left out."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def parse_steps(text: str) -> dict[str, dict]:
    """'info:0:3.2:10,smoke:124:45.0:45' -> {step: {exit, seconds, cap, status}}."""
    steps = {}
    for item in filter(None, text.split(",")):
        name, code, seconds, cap = item.split(":")
        steps[name] = {"exit": int(code), "seconds": float(seconds), "cap_s": float(cap),
                       "status": step_status(int(code), float(cap))}
    return steps


def step_status(code: int, cap: float) -> str:
    if code == 0:
        return "done"
    if code == 124:
        return f"cut at its {cap:g} s cap"
    if code == 137:
        return f"killed after its {cap:g} s cap (it ignored the interrupt)"
    return f"failed (exit {code})"


def fig4_facts(out: Path) -> dict:
    path = out / "fig4.md"
    if not path.is_file():
        return {}
    first = path.read_text().splitlines()[0]
    try:
        return json.loads(first[len("<!-- "):-len(" -->")])
    except ValueError:
        return {}


def target(name: str, measured: float | None, why_not: str | None = None, **detail) -> dict:
    _, limit, sense = TARGETS[name]
    met = None if measured is None else (measured <= limit if sense == "at_most"
                                         else measured >= limit)
    entry = {"measured": measured, "target": limit, "sense": sense, "met": met, **detail}
    if measured is None:
        entry["not_measured"] = why_not or "no rows for it in this run"
    return entry


def speed_targets(rows: list[dict], why_not: str) -> dict:
    """The per-epoch targets from speed.jsonl: the device's float32 table, NumPy beside it."""
    device = [r for r in rows if r.get("table", "").endswith("-float32")
              and not r["table"].startswith("numpy")]
    numpy = {(r["model"], r["optimizer"], r["k"]): r["epoch_s"] for r in rows
             if r.get("table") == "numpy-float32"}
    sampled = lambda r: r["formulation"] == "sample"  # noqa: E731 - nd: its own target

    def worst(select: Callable[[dict], bool], name: str) -> dict:
        chosen = [r for r in device if select(r)]
        slowest = max(chosen, key=lambda r: r["epoch_s"]) if chosen else None
        return target(name, slowest and slowest["epoch_s"], why_not, cells=len(chosen),
                      slowest=slowest and cell(slowest))
    official = [(r["official_h200_epoch_s"] / r["epoch_s"], r) for r in device
                if r.get("official_h200_epoch_s")]
    over_numpy = [(numpy[key] / r["epoch_s"], r) for r in device
                  if (key := (r["model"], r["optimizer"], r["k"])) in numpy]
    nd = [(r["bound_ratio"], r) for r in device if sampled(r)]
    scaling = [r for r in rows if r.get("table") == "batch_scaling"]
    return {
        "sgd_epoch_s": worst(lambda r: r["optimizer"] == "sgd_nesterov" and r["k"] <= 100
                             and not sampled(r), "sgd_epoch_s"),
        "adam_epoch_s": worst(lambda r: r["optimizer"] == "adam" and r["k"] <= 100
                              and not sampled(r), "adam_epoch_s"),
        "k500_epoch_s": worst(lambda r: r["k"] == 500 and not sampled(r), "k500_epoch_s"),
        "nd_bound_ratio": extreme("nd_bound_ratio", nd, max, why_not),
        "speedup_over_official": extreme("speedup_over_official", official, min, why_not),
        "speedup_over_numpy": extreme("speedup_over_numpy", over_numpy, min, why_not),
        "batch64_throughput_gain": target(
            "batch64_throughput_gain", scaling[0]["throughput_gain"] if scaling else None,
            why_not),
    }


def extreme(name: str, pairs: list[tuple[float, dict]], pick, why_not: str) -> dict:
    """The worst (min or max) of (value, row) pairs as a target, with its cell."""
    if not pairs:
        return target(name, None, why_not, cells=0)
    value, row = pick(pairs, key=lambda pair: pair[0])
    return target(name, value, why_not, cells=len(pairs), worst=cell(row))


def cell(row: dict) -> str:
    return (f"{row['model']} {row['optimizer']} k={row['k']} ({row.get('step')}"
            + (f"; graph_error: {row['graph_error']}" if row.get("graph_error") else "") + ")")


def why_not_measured(step: str, steps: dict[str, dict]) -> str:
    """Why a step's file holds nothing for a target: the step's fate as the shell saw it."""
    if step not in steps:
        return f"{step}: not run (the check ended before it)" if steps else \
            f"{step}: no step status given (run through gpu_check.sh)"
    status = steps[step]["status"]
    return f"{step}: {status}" if status != "done" else f"{step}: ran, but wrote no row for it"


def summarize(out: Path, steps: dict[str, dict] | None = None, dry: bool = False) -> dict:
    """Every target from the files in ``out`` and the steps' fates; writes summary.json.
    ``dry``: the check ran with --dry (info.json says so too, where its step finished)."""
    steps = steps or {}
    info = read_json(out / "info.json") or {}
    dry = dry or bool(info.get("dry"))
    smoke = [r for r in read_rows(out / "smoke.jsonl") if r.get("kind") == "graph_vs_eager"]
    parity = read_rows(out / "parity.jsonl")
    facts = fig4_facts(out)
    pytest_lines = ((out / "pytest.txt").read_text().strip().splitlines()
                    if (out / "pytest.txt").is_file() else [])
    why = {step: why_not_measured(step, steps) for step in STEP_ORDER}

    targets = {}
    ran_all = all(steps.get(s, {}).get("status") == "done" for s in STEP_ORDER)
    targets["check_seconds"] = target(
        "check_seconds", sum(s["seconds"] for s in steps.values()) if ran_all else None,
        "not every step finished: " + "; ".join(
            why[s] for s in STEP_ORDER if steps.get(s, {}).get("status") != "done"))
    targets["graph_bitwise_vs_eager"] = target(
        "graph_bitwise_vs_eager", sum(r["bitwise_equal"] for r in smoke) if smoke else None,
        why["smoke"], models=[r["model"] for r in smoke],
        first_differences={r["model"]: r["first_difference"] for r in smoke
                           if r["first_difference"]})
    targets["graph_captured"] = target(
        "graph_captured", sum(r["step"] == "graph" for r in smoke) if smoke else None,
        why["smoke"], graph_errors={r["model"]: r["graph_error"] for r in smoke
                                    if r["graph_error"]})
    targets["parity_within_one_eval"] = target(
        "parity_within_one_eval", sum(r["within_one_eval"] for r in parity) if parity else None,
        why["parity"], rows=len(parity),
        max_d_align_diff=max((r["max_d_align_diff"] for r in parity), default=None))
    failed = tests_failed(pytest_lines, steps.get("tests"))
    targets["tests_pass"] = target("tests_pass", failed, why["tests"],
                                   pytest=[line for line in pytest_lines
                                           if line.startswith(("$ ", "=")) or " passed" in line
                                           or " failed" in line][-6:])
    targets.update(speed_targets(read_rows(out / "speed.jsonl"), why["speed"]))
    targets["fig4_seconds"] = fig4_target(facts, steps.get("fig4"), why["fig4"])

    summary = {
        "dry": dry,
        **({"note": "dry run: a CPU stand-in at small sizes; no number here is a GPU's"}
           if dry else {}),
        "device": ((info.get("gpu") or {}).get("gpu_name")
                   or (info.get("machine") or {}).get("cpu_model")),
        "commit": info.get("git"),
        "steps": {s: steps.get(s, {"status": "not run (the check ended before it)"})
                  for s in STEP_ORDER},
        "files": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
        "targets": targets,
    }
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    os.replace(tmp, out / "summary.json")
    return summary


PYTEST_TOTALS = re.compile(r"\b\d+ (passed|failed|skipped|deselected|errors?)\b.* in [\d.]+s")
PYTEST_FAILURES = re.compile(r"\b(\d+) (failed|errors?)\b")


def tests_failed(lines: list[str], step: dict | None) -> int | None:
    """Failed plus erroring tests over pytest's closing lines (one per pytest run); None
    where the step was cut or never ran (a cut suite has not shown that nothing fails)."""
    if not step or step["exit"] in (124, 137):
        return None
    totals = [line for line in lines if PYTEST_TOTALS.search(line)]
    if not totals:
        return None
    return sum(int(n) for line in totals for n, _ in PYTEST_FAILURES.findall(line))


def fig4_target(facts: dict, step: dict | None, why_not: str) -> dict:
    if facts.get("status") == "done":
        return target("fig4_seconds", facts["wall_time_s"], exit_code=facts.get("exit_code"))
    entry = target("fig4_seconds", None, why_not)
    cap = (step or {}).get("cap_s")
    if facts.get("status") in ("cut", "started") and cap is not None \
            and cap >= TARGETS["fig4_seconds"][1] and step["exit"] in (124, 137):
        entry["met"] = False        # it ran past its cap, which is at least the target
        entry["ran_at_least_s"] = facts.get("wall_time_s") or cap
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.gpu_summary")
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", default="", help="STEP:EXIT:SECONDS:CAP,... so far")
    parser.add_argument("--dry", action="store_true", help="the check ran with --dry")
    args = parser.parse_args(argv)
    summarize(args.out, parse_steps(args.steps), args.dry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
