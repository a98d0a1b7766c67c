"""The damaged-input corpus: every verb fed broken run directories, configs and flags.

Each case runs ``lae-bench`` in-process through its guarded entry (``bench.entry.guarded``,
what the console script runs), so an exception that escapes becomes the internal-error exit
code instead of failing the test run. For every case: no traceback, no raw exception name in
the output, an exit code the case allows (docs/reliability.md), and a failing command says
why in one line. ``compare`` never exits 1 (regression) for a damaged input.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
import yaml

from bench.entry import guarded
from bench.exits import EXIT_INTERNAL

RAW_EXCEPTION = re.compile(r"\b(Traceback|[A-Z][A-Za-z]*(Error|Exception|Interrupt)|"
                           r"StopIteration|errno)\b")
TINY = {"description": "corpus base", "data": {"kind": "synthetic", "m": 12, "n": 120,
                                                "seed": 5, "spectrum": {"kind": "linear",
                                                                        "high": 10, "low": 1}},
        "models": ["rotation"], "optimizers": ["sgd_nesterov", "adam"], "k": [2],
        "lr": 0.003, "seeds": [0, 1], "thresholds": [0.5, 0.3], "max_epochs": 300,
        "eval_every": 10, "dtype": "float64", "threads": 1}


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = guarded([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """(config file, run directory) of a tiny finished sweep: 2 cells, 2 seeds each."""
    root = tmp_path_factory.mktemp("corpus")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    code, _, err = run_cli("run", config, "--out", root / "base", "--quiet")
    assert code == 0, err
    return config, root / "base"


# --- damage to a run directory ------------------------------------------------------------------

def _manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        path = run_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        new = change(manifest)
        path.write_text(json.dumps(manifest if new is None else new))
    return damage


def _raw(name: str, payload: bytes | str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        path = run_dir / name if "/" in name or name == "manifest.json" else _first_record(
            run_dir)
        path.write_bytes(payload.encode() if isinstance(payload, str) else payload)
    return damage


def _first_record(run_dir: Path) -> Path:
    return sorted((run_dir / "records").glob("*.json"))[0]


def _record(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        path = _first_record(run_dir)
        record = json.loads(path.read_text())
        new = change(record)
        path.write_text(json.dumps(record if new is None else new))
    return damage


def _record_text(edit: Callable[[str], str]) -> Callable[[Path], None]:
    """Edit the record's JSON text (values json.dumps cannot write: Infinity, 1e400)."""
    def damage(run_dir: Path) -> None:
        path = _first_record(run_dir)
        path.write_text(edit(path.read_text()))
    return damage


def _set(field: str, value) -> Callable[[dict], None]:
    def change(obj: dict) -> None:
        target, *rest = field.split(".")
        if rest:
            obj[target][rest[0]] = value
        else:
            obj[target] = value
    return change


def _drop(field: str) -> Callable[[dict], None]:
    return lambda obj: obj.pop(field)


def _replace_dir(name: str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        path = run_dir / name if name == "manifest.json" else _first_record(run_dir)
        path.unlink()
        path.mkdir()
    return damage


def _duplicate(run_dir: Path) -> None:
    src = _first_record(run_dir)
    shutil.copy(src, src.with_name("copy-of-" + src.name))


def _missing_manifest(run_dir: Path) -> None:
    (run_dir / "manifest.json").unlink()


BINARY = b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00garbage"
MANIFEST_DAMAGE = {
    "manifest-list": _raw("manifest.json", "[]"),
    "manifest-null": _raw("manifest.json", "null"),
    "manifest-binary": _raw("manifest.json", BINARY),
    "manifest-empty": _raw("manifest.json", ""),
    "manifest-truncated": _raw("manifest.json", '{"schema_version": 2, "con'),
    "manifest-deep": _raw("manifest.json", "[" * 100_000),
    "manifest-utf16": _raw("manifest.json", '{"a": 1}'.encode("utf-16")),
    "manifest-missing": _missing_manifest,
    "manifest-directory": _replace_dir("manifest.json"),
    "manifest-no-config": _manifest(_drop("config")),
    "manifest-config-null": _manifest(_set("config", None)),
    "manifest-config-list": _manifest(_set("config", [1, 2])),
    "manifest-sessions-text": _manifest(_set("sessions", "oops")),
    "manifest-schema-99": _manifest(_set("schema_version", 99)),
    "manifest-schema-text": _manifest(_set("schema_version", "2")),
    "manifest-machine-text": _manifest(_set("machine", "x")),
    "manifest-git-list": _manifest(_set("git", [1])),
    "manifest-no-schema": _manifest(_drop("schema_version")),
    "manifest-nan-schema": _raw("manifest.json", '{"schema_version": NaN, "config": {}}'),
}
RECORD_DAMAGE = {
    "record-null": _raw("record", "null"),
    "record-list": _raw("record", "[]"),
    "record-binary": _raw("record", BINARY),
    "record-empty": _raw("record", ""),
    "record-truncated": _raw("record", '{"key": "rotation__'),
    "record-directory": _replace_dir("record"),
    "record-digits": _raw("record", '{"epochs": ' + "9" * 5000 + "}"),
    "epochs-text": _record(_set("epochs_to.0.3", "abc")),
    "epochs-infinity": _record_text(lambda t: re.sub(r'"0.3": \d+', '"0.3": Infinity', t)),
    "epochs-1e400": _record_text(lambda t: re.sub(r'"0.3": \d+', '"0.3": 1e400', t)),
    "epochs-10^400": _record(_set("epochs_to.0.3", 10 ** 400)),
    "epochs-negative": _record(_set("epochs_to.0.3", -50)),
    "epochs-fraction": _record(_set("epochs_to.0.3", 12.5)),
    "epochs-beyond-run": _record(_set("epochs_to.0.3", 10 ** 6)),
    "epochs-run-negative": _record(_set("epochs", -1)),
    "status-unknown": _record(_set("status", "done")),
    "status-contradicts": _record(_set("epochs_to.0.3", None)),
    "field-missing": _record(_drop("lr")),
    "lr-nan": _record_text(lambda t: re.sub(r'"lr": [^,]+', '"lr": NaN', t)),
    "lr-negative": _record(_set("lr", -0.1)),
    "k-zero": _record(_set("k", 0)),
    "k-beyond-m": _record(_set("k", 10 ** 4)),
    "seed-text": _record(_set("seed", "0")),
    "times-text": _record(_set("epoch_times_s", ["x"])),
    "wall-infinity": _record_text(lambda t: re.sub(r'"wall_time_s": [^,]+',
                                                   '"wall_time_s": Infinity', t)),
    "final-list": _record(_set("final", [1])),
    "record-schema-99": _record(_set("schema_version", 99)),
    "key-mismatch": _record(_set("key", "rotation__adam__k9__lr1__seed7")),
    "duplicate-copy": _duplicate,
    "bool-batch": _record(_set("batch_size", True)),
}
# Exit codes each verb may give (docs/reliability.md): a reader loads the valid records and
# names the skipped files in one line; a damaged manifest leaves nothing to read (2); compare
# refuses to judge on damaged input (2), never 1; a resumed run sets the record aside, reruns
# the cell (0).
READERS = {
    "show": (lambda d, base: ["show", d], {0}),
    "show-json": (lambda d, base: ["show", d, "--format", "json"], {0}),
    "compare-as-baseline": (lambda d, base: ["compare", d, base], {2}),
    "compare-as-candidate": (lambda d, base: ["compare", base, d], {2}),
    "resume": (lambda d, base: ["run", "{config}", "--out", d, "--quiet"], {0}),
}
SLOW_READERS = {      # matplotlib: a few damages only
    "plot": (lambda d, base: ["plot", d, "--out", d.parent / (d.name + "-plots")], {0}),
    "report": (lambda d, base: ["report", d, "--out", d.parent / (d.name + ".html")], {0}),
}
SLOW_DAMAGES = ("record-binary", "epochs-negative", "duplicate-copy", "key-mismatch")


def _cases():
    for damage in MANIFEST_DAMAGE:
        for verb in {**READERS, **SLOW_READERS}:
            yield pytest.param(damage, verb, id=f"{verb}-{damage}")
    for damage in RECORD_DAMAGE:
        for verb in READERS:
            yield pytest.param(damage, verb, id=f"{verb}-{damage}")
    for damage in SLOW_DAMAGES:         # they draw every figure: seconds each
        for verb in SLOW_READERS:
            yield pytest.param(damage, verb, id=f"{verb}-{damage}", marks=pytest.mark.slow)


def check_one_line_outcome(code: int, out: str, err: str, allowed: set[int]) -> None:
    assert code != EXIT_INTERNAL, err
    assert code in allowed, f"exit {code}, expected one of {sorted(allowed)}: {err}"
    for text in (out, err):
        assert not RAW_EXCEPTION.search(text), text[-2000:]
    if code != 0:
        assert len(err.strip().splitlines()) == 1 and err.startswith("lae-bench: "), err


@pytest.mark.parametrize("damage, verb", list(_cases()))
def test_a_damaged_run_directory_is_named_in_one_line(base, tmp_path, damage, verb):
    config, base_dir = base
    run_dir = tmp_path / "damaged"
    shutil.copytree(base_dir, run_dir)
    {**MANIFEST_DAMAGE, **RECORD_DAMAGE}[damage](run_dir)
    argv_of, allowed = {**READERS, **SLOW_READERS}[verb]
    if damage in MANIFEST_DAMAGE:
        allowed = {2}
    argv = [str(config) if a == "{config}" else a for a in argv_of(run_dir, base_dir)]
    code, out, err = run_cli(*argv)
    check_one_line_outcome(code, out, err, allowed)
    if code == 0 and damage in RECORD_DAMAGE:
        assert "skipped" in err                         # the reader says what it left out


# --- damaged configs --------------------------------------------------------------------------

def _config(**changes) -> str:
    return yaml.safe_dump({**TINY, **changes})


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi"))
CONFIGS = {
    "duplicate-key": _config().replace("max_epochs: 300", "max_epochs: 300\nmax_epochs: 40"),
    "inverted-spectrum": _config(data={**TINY["data"], "spectrum": {"kind": "linear",
                                                                    "high": 1, "low": 100}}),
    "alias-bomb-description": ALIAS_BOMB + _config(description="*i").replace("'*i'", "*i"),
    "alias-bomb-models": ALIAS_BOMB + _config(models="*i").replace("'*i'", "*i"),
    "binary": BINARY,
    "empty": "",
    "a-list": "[1, 2]",
    "bad-yaml": "models: [rotation\n  k: {",
    "deep": "[" * 5_000,
    "unknown-key": _config(colour="blue"),
    "k-beyond-m": _config(k=[50]),
    "negative-epochs": _config(max_epochs=-5),
    "lr-text": _config(lr="fast"),
    "seeds-zero": _config(seeds=[]),
    "nan-threshold": _config(thresholds=[float("nan")]),
    "huge-m": _config(data={**TINY["data"], "m": 100_000}),
    "huge-n": _config(data={**TINY["data"], "n": 100_000_000}),
}
HUGE = ("huge-m", "huge-n")


@pytest.mark.parametrize("verb", ["run", "estimate", "tune", "hessian"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_damaged_config_is_named_in_one_line(tmp_path, name, verb):
    if name in HUGE and not _has_memory_preflight():
        pytest.skip("needs the memory preflight (it would allocate tens of GiB)")
    config = tmp_path / "config.yaml"
    payload = CONFIGS[name]
    config.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
    argv = {"run": ["run", config, "--out", tmp_path / "run", "--quiet"],
            "estimate": ["run", config, "--out", tmp_path / "run", "--estimate"],
            "tune": ["tune", config, "--out", tmp_path / "lr.yaml", "--grid", "1e-3:1e-2:2"],
            "hessian": ["hessian", config, "--out", tmp_path / "h", "--k", "2"]}[verb]
    code, out, err = run_cli(*argv)
    check_one_line_outcome(code, out, err, {2})
    assert str(config) in err or "config" in err or "data: m = " in err   # file or field


def _has_memory_preflight() -> bool:
    import importlib.util
    return importlib.util.find_spec("bench.sweep.memory") is not None


# --- bad flags on every verb ------------------------------------------------------------------

FLAGS = [
    ["speed", "--n", "-5"], ["speed", "--batch-runs", "-1"], ["speed", "--m", "0"],
    ["speed", "--k", "0"], ["speed", "--k", "10", "--m", "5"], ["speed", "--models", "nope"],
    ["speed", "--k", "x"], ["speed", "--steps", "warp"],
    ["tune", "smoke", "--grid", "1:0:3"], ["tune", "smoke", "--grid", "nope"],
    ["tune", "nope-preset"],
    ["hessian", "--k", "0"], ["hessian", "--budget", "-1"], ["hessian", "--models", "nope"],
    ["hessian", "--runs", "{missing}"],
    ["interleave", "smoke", "--baseline", "true", "--out", "{tmp}/i", "--rounds", "0"],
    ["interleave", "smoke", "--baseline", "true", "--out", "{tmp}/i", "--rounds", "-3"],
    ["interleave", "smoke", "--out", "{tmp}/i"],
    ["interleave", "smoke", "--baseline", "no-such-program-x", "--out", "{tmp}/i"],
    ["interleave", "{afile}", "--baseline", "true", "--out", "{tmp}/i"],
    ["gpu-check", "--step", "nope"],
    ["show", "{base}", "--threshold", "7"], ["show", "{base}", "--threshold", "nan"],
    ["show", "{base}", "--format", "xml"], ["show", "{missing}"], ["show", "{afile}"],
    ["plot", "{base}", "--threshold", "-1", "--out", "{tmp}/p"], ["plot", "{missing}"],
    ["compare", "{base}", "{base}", "--match-by", "colour"],
    ["compare", "{base}", "{base}", "--thresholds", "{missing}"],
    ["compare", "{base}", "{base}", "--thresholds", "{afile}"],
    ["compare", "{base}", "{missing}"], ["compare", "{missing}", "{base}"],
    ["report", "{missing}"], ["report", "{base}", "--baseline", "{missing}",
                              "--out", "{tmp}/r.html"],
    ["run", "nope-preset"], ["run", "{config}", "--seeds", "0", "--out", "{tmp}/r"],
    ["run", "{config}", "--max-epochs", "-1", "--out", "{tmp}/r"],
    ["run", "{config}", "--max-epochs", "0", "--out", "{tmp}/r"],
    ["run", "{config}", "--scheduler", "bogus", "--out", "{tmp}/r"],
    ["run", "{config}", "--dtype", "float16"], ["run", "{config}", "--out", "{afile}/x"],
    ["run", "{afile}"],
    ["info", "--format", "xml"], ["presets", "extra"], ["bogus-verb"], ["--no-such-flag"],
]


@pytest.mark.parametrize("argv", FLAGS, ids=lambda a: " ".join(a))
def test_a_bad_flag_is_named_in_one_line(base, tmp_path, argv):
    config, base_dir = base
    afile = tmp_path / "afile"
    afile.write_bytes(BINARY)
    names = {"base": base_dir, "config": config, "tmp": tmp_path, "afile": afile,
             "missing": tmp_path / "no-such-thing"}
    code, out, err = run_cli(*[a.format(**names) for a in argv])
    check_one_line_outcome(code, out, err, {2})
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("afile",)]
    assert leftovers == [], f"a refused command left {leftovers} behind"


def test_resume_keeps_a_damaged_record_aside_and_runs_its_cell_again(base, tmp_path):
    config, base_dir = base
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)
    damaged = _first_record(run_dir)
    original = damaged.read_text()
    damaged.write_text(original.replace('"status": "reached"', '"status": "done"'))
    code, _, err = run_cli("run", config, "--out", run_dir, "--quiet")
    assert code == 0 and "moved to" in err and "its cell runs again" in err
    assert (run_dir / "damaged" / damaged.name).read_text() != original      # kept as found
    rerun = json.loads(damaged.read_text())
    batch = ("batch_size",)                 # only the set-aside seed ran again: a batch of 1
    assert rerun == {**json.loads(original), **{f: rerun[f] for f in rerun if f.endswith(
        ("_s", "shares")) or f in batch}}                   # the same outcome, new timings
