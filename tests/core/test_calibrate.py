"""backend: auto picks the faster namespace per problem and batch size, once per machine and
version (cached)."""
from __future__ import annotations

import json

import pytest

from lae_core import backend as be
from lae_core import calibrate, synthetic
from lae_core.backend import backend_name, get_namespace


@pytest.fixture(scope="module")
def data():
    return synthetic(m=60, n=300, seed=2)


@pytest.fixture
def strict():
    return pytest.importorskip("array_api_strict")


def test_the_faster_namespace_is_chosen_and_remembered(data, tmp_path, monkeypatch, strict):
    """NumPy's packed step against array-api-strict's reference step: NumPy wins, and the
    second call reads the answer instead of timing again."""
    numpy = get_namespace("numpy")
    cache = tmp_path / "calibration.json"
    chosen = calibrate.fastest_backend(data, "rotation", "sgd_nesterov", 4, "float64",
                                       (strict, numpy), cache=cache)
    assert chosen is numpy
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == ["numpy"] and "rotation|sgd_nesterov|spectral|k4" in \
        next(iter(stored))

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again although the answer is cached")
    monkeypatch.setattr(calibrate, "probe_seconds", no_timing)
    again = calibrate.fastest_backend(data, "rotation", "sgd_nesterov", 4, "float64",
                                      (strict, numpy), cache=cache)
    assert again is numpy


class Probe:
    """Stands in for ``probe_seconds``: a per-epoch time per (namespace, runs); counts calls."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, []

    def __call__(self, d, model, optimizer, k, dtype, xp, form, runs=1, give_up_after=None):
        self.calls.append((backend_name(xp), runs))
        return self.seconds[backend_name(xp), runs], 0.01


def test_a_slower_candidate_is_never_chosen(data, tmp_path, monkeypatch, strict):
    """Whatever the order of the candidates, the smaller probe time wins."""
    numpy = get_namespace("numpy")
    monkeypatch.setattr(calibrate, "probe_seconds",
                        Probe({("numpy", 1): 2e-3, ("array_api_strict", 1): 1e-3}))
    for order in ((numpy, strict), (strict, numpy)):
        chosen = calibrate.fastest_backend(data, "vae", "adam", 3, "float32", order,
                                           cache=tmp_path / f"c{id(order)}.json")
        assert chosen is strict


class FakeGpu:
    """A namespace that says it is a GPU (its name and CuPy version are all the key reads)."""
    __name__ = "fakegpu"


def test_the_batch_size_is_probed_and_keys_the_cache(data, tmp_path, monkeypatch):
    """One run: the GPU loses on launch latency; 64 runs: it wins. A cached one-run answer
    must not decide the 64-run batch, and the 64-run probe trains 64 runs."""
    numpy, gpu = get_namespace("numpy"), FakeGpu()
    monkeypatch.setattr(be, "device_facts", lambda xp: {"gpu_name": "Fake H200",
                                                        "cupy_version": "14.2.0"}
                        if xp is gpu else {})
    probe = Probe({("fakegpu", 1): 30e-6, ("numpy", 1): 10e-6,
                   ("fakegpu", 64): 40e-6, ("numpy", 64): 600e-6})
    monkeypatch.setattr(calibrate, "probe_seconds", probe)
    cache = tmp_path / "calibration.json"
    pick = lambda runs: calibrate.fastest_backend(  # noqa: E731
        data, "rotation", "sgd_nesterov", 2, "float32", (gpu, numpy), runs=runs, cache=cache)
    assert pick(1) is numpy
    assert pick(64) is gpu
    assert probe.calls == [("fakegpu", 1), ("numpy", 1), ("fakegpu", 64), ("numpy", 64)]
    assert pick(64) is gpu and pick(1) is numpy and len(probe.calls) == 4   # both cached
    keys = list(json.loads(cache.read_text()))
    assert [k.rsplit("|", 1)[1] for k in keys] == ["runs1", "runs64"]
    assert all("Fake H200" in k and "cupy 14.2.0" in k and "lae-bench " in k
               and f"numpy {be.np.__version__}" in k and be.cpu_model() in k for k in keys)


def test_another_machine_or_version_probes_again(data, tmp_path, monkeypatch):
    numpy = get_namespace("numpy")
    probe = Probe({("numpy", 8): 1e-3})
    monkeypatch.setattr(calibrate, "probe_seconds", probe)
    cache = tmp_path / "calibration.json"
    ask = lambda: calibrate.fastest_backend(data, "rotation", "gd", 2, "float64",  # noqa: E731
                                            (numpy,), runs=8, cache=cache)
    ask()
    ask()
    assert len(probe.calls) == 1
    monkeypatch.setattr(be, "cpu_model", lambda: "Another CPU")
    ask()
    assert len(probe.calls) == 2
    monkeypatch.setattr(calibrate, "_version", lambda package: "9.9.9")
    ask()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ask()
    assert len(probe.calls) == 4


def test_a_probe_that_has_already_lost_stops_early(data):
    """A limit far below one block's time: the probe gives up with inf at the first
    evaluation after its warm-up block instead of training all its blocks."""
    seconds, wall = calibrate.probe_seconds(data, "rotation", "sgd_nesterov", 2, "float64",
                                            get_namespace("numpy"), "spectral", 2,
                                            give_up_after=0.0)
    assert seconds == float("inf") and wall < 5.0
    seconds, _ = calibrate.probe_seconds(data, "rotation", "sgd_nesterov", 2, "float64",
                                         get_namespace("numpy"), "spectral", 2)
    assert 0 < seconds < float("inf")


def test_a_damaged_cache_is_timed_again(data, tmp_path):
    cache = tmp_path / "calibration.json"
    cache.write_text("{not json")
    numpy = get_namespace("numpy")
    assert calibrate.fastest_backend(data, "nd_exp", "adam", 2, "float64", (numpy,),
                                     cache=cache) is numpy
    assert json.loads(cache.read_text())
