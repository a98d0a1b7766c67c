"""backend: auto picks the faster namespace per problem, once per machine (cached)."""
from __future__ import annotations

import json

import array_api_strict
import pytest

from lae_core import calibrate, synthetic
from lae_core.backend import backend_name, get_namespace


@pytest.fixture(scope="module")
def data():
    return synthetic(m=60, n=300, seed=2)


def test_the_faster_namespace_is_chosen_and_remembered(data, tmp_path, monkeypatch):
    """NumPy's packed step against array-api-strict's reference step: NumPy wins, and the
    second call reads the answer instead of timing again."""
    numpy = get_namespace("numpy")
    cache = tmp_path / "calibration.json"
    chosen = calibrate.fastest_backend(data, "rotation", "sgd_nesterov", 4, "float64",
                                       (array_api_strict, numpy), cache=cache)
    assert chosen is numpy
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == ["numpy"] and "rotation|sgd_nesterov|spectral|k4" in \
        next(iter(stored))

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again although the answer is cached")
    monkeypatch.setattr(calibrate, "probe_seconds", no_timing)
    again = calibrate.fastest_backend(data, "rotation", "sgd_nesterov", 4, "float64",
                                      (array_api_strict, numpy), cache=cache)
    assert again is numpy


def test_a_slower_candidate_is_never_chosen(data, tmp_path, monkeypatch):
    """Whatever the order of the candidates, the smaller probe time wins."""
    numpy = get_namespace("numpy")
    seconds = {"numpy": 2e-3, "array_api_strict": 1e-3}
    monkeypatch.setattr(calibrate, "probe_seconds",
                        lambda d, mo, o, k, dt, xp, f: seconds[backend_name(xp)])
    for order in ((numpy, array_api_strict), (array_api_strict, numpy)):
        chosen = calibrate.fastest_backend(data, "vae", "adam", 3, "float32", order,
                                           cache=tmp_path / f"c{id(order)}.json")
        assert chosen is array_api_strict


def test_a_damaged_cache_is_timed_again(data, tmp_path):
    cache = tmp_path / "calibration.json"
    cache.write_text("{not json")
    numpy = get_namespace("numpy")
    assert calibrate.fastest_backend(data, "nd_exp", "adam", 2, "float64", (numpy,),
                                     cache=cache) is numpy
    assert json.loads(cache.read_text())
