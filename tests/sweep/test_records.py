"""Records of schema 2: data named by recipe, exact numbers by fingerprint; schema 1 still loads."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.errors import UsageError
from bench.sweep.config import load_config
from bench.sweep.dataset import data_recipe, load_dataset
from bench.sweep.record import SCHEMA_VERSION, Record, upgrade_schema_1
from bench.sweep.recipe import file_recipe, synthetic_recipe
from bench.schema import take_skipped
from bench.sweep.store import load_records, records_frame

from ..helpers import make_record, write_run

BASELINES = Path(__file__).resolve().parents[2] / "results" / "baselines"


def test_schema_1_baselines_load_with_the_recipe_a_fresh_run_writes():
    """The committed baselines are schema 1: their data_id ended in the hash of C."""
    config = load_config("smoke")
    records = load_records(BASELINES / "smoke")
    assert json.loads(next((BASELINES / "smoke" / "records").glob("*.json")).read_text()
                      )["schema_version"] == 1
    assert {r.data_id for r in records} == {data_recipe(config.data)}
    assert {r.data_fingerprint for r in records} == {"48493de87c"}
    assert all(r.schema_version == SCHEMA_VERSION for r in records)
    # quick (high: null in its config) names its data as a config that spells out 0.1 m would
    quick = {r.data_id for r in load_records(BASELINES / "quick")}
    assert quick == {"synthetic-linear-m1000-n5000-seed1234-high100-low1"}


def test_the_frame_carries_the_fingerprint_beside_the_recipe():
    frame = records_frame(BASELINES / "smoke")
    assert set(frame["data_fingerprint"]) == {"48493de87c"}
    assert frame["data_id"].nunique() == 1


def test_schema_1_without_a_data_config_keeps_the_name_before_the_hash():
    old = {**make_record(data_id="npy-faces-0123abcdef"), "schema_version": 1}
    del old["data_fingerprint"]
    new = upgrade_schema_1(old, manifest={"config": {"name": "x"}})
    assert (new["data_id"], new["data_fingerprint"]) == ("npy-faces", "0123abcdef")
    with pytest.raises(UsageError, match="does not end in a 10-digit hash"):
        upgrade_schema_1({**old, "data_id": "no-hash-here"}, manifest=None)


@pytest.mark.parametrize("version", [0, 3, None])
def test_unknown_schemas_are_refused_with_what_to_do(tmp_path, version):
    run = write_run(tmp_path / "run", [make_record()])
    path = next((run / "records").glob("*.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": version}))
    assert load_records(run) == []          # skipped, and named with what to do
    (why,) = take_skipped().values()
    assert re.search(r"schema_version .* is not one of 1, 2; re-run", why)


def test_a_record_missing_a_field_or_with_a_wrong_type_is_refused(tmp_path):
    record = make_record()
    with pytest.raises(UsageError, match="data_fingerprint: missing"):
        Record.from_json({k: v for k, v in record.items() if k != "data_fingerprint"})
    with pytest.raises(UsageError, match="k: '10' is not allowed; expected an integer"):
        Record.from_json({**record, "k": "10"})
    with pytest.raises(UsageError, match="epoch_time_median_s: True is not allowed"):
        Record.from_json({**record, "epoch_time_median_s": True})
    with pytest.raises(TypeError):   # the factory cannot forget a field either
        Record(key="x")


def test_round_trip_through_the_store_keeps_every_field(tmp_path):
    record = Record.from_json(make_record(epochs=None))
    run = write_run(tmp_path / "run", [record.to_json()])
    assert load_records(run) == [replace(record, history_file=None)]


def test_recipes_name_how_the_data_was_made():
    base = {"kind": "synthetic", "m": 50, "n": 500, "seed": 1,
            "spectrum": {"kind": "linear", "high": None, "low": 1.0, "alpha": 1.0,
                         "values": None}}
    spelled = {**base, "spectrum": {**base["spectrum"], "high": 5.0}}
    assert synthetic_recipe(base) == synthetic_recipe(spelled) \
        == "synthetic-linear-m50-n500-seed1-high5-low1"
    variants = [{**base, "seed": 2}, {**base, "n": 501},
                {**base, "spectrum": {**base["spectrum"], "low": 0.5}},
                {**base, "spectrum": {**base["spectrum"], "kind": "geometric"}},
                {**base, "spectrum": {**base["spectrum"], "kind": "power_law", "alpha": 2.0}},
                {**base, "spectrum": {**base["spectrum"], "kind": "explicit",
                                      "values": list(np.linspace(5, 1, 50))}}]
    recipes = {synthetic_recipe(v) for v in variants} | {synthetic_recipe(base)}
    assert len(recipes) == len(variants) + 1


def test_file_recipes_name_the_file_and_its_size(tmp_path):
    path = tmp_path / "faces.npy"
    np.save(path, np.ones((4, 3)))
    assert file_recipe("npy", path) == f"npy-faces.npy-{path.stat().st_size}B"
    assert file_recipe("npy", path, centred=True).endswith("B-centred")


def test_the_fingerprint_tells_bitwise_different_data_apart_the_recipe_does_not():
    config = load_config("smoke")
    data = load_dataset(config.data, keep_samples=False)
    C = data.C.copy()
    C[0, 0] = np.nextafter(C[0, 0], np.inf)   # one ulp: what another BLAS might round to
    other = replace(data, C=C)
    assert other.fingerprint != data.fingerprint and other.name == data.name
