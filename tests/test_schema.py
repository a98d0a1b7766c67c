"""The one schema of stored files: what it accepts (every committed baseline) and, for each
kind of damage, the file and field it names."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.schema import SchemaError, check_manifest, check_record, read_json

BASELINES = Path(__file__).resolve().parents[1] / "results" / "baselines"


def test_every_committed_result_passes():
    records = sorted(BASELINES.glob("*/records/*.json"))
    assert len(records) > 100
    for path in records:
        check_record(read_json(path, "a record"), path)
    for path in BASELINES.glob("*/manifest.json"):
        check_manifest(read_json(path, "a manifest"), path)


@pytest.fixture
def stored() -> tuple[Path, dict]:
    path = sorted(BASELINES.glob("smoke/records/*.json"))[0]
    return path, json.loads(path.read_text())


@pytest.mark.parametrize("field, value", [
    ("epochs_to.0.3", "abc"), ("epochs_to.0.3", math.inf), ("epochs_to.0.3", -50),
    ("epochs_to.0.3", 10 ** 400), ("epochs_to.0.3", 12.5), ("epochs", -1), ("lr", math.nan),
    ("lr", 0.0), ("k", 0), ("k", 51), ("seed", "0"), ("batch_size", True),
    ("wall_time_s", math.inf), ("epoch_times_s", ["x"]), ("final", [1]),
    ("final.d_align", math.inf), ("status", "done"), ("key", "rotation__sgd__k2__lr1__seed0"),
    ("thresholds", []), ("schema_version", 99), ("epochs_to", {"0.7": 3}),
])
def test_a_damaged_record_names_its_file_and_field(stored, field, value):
    path, record = stored
    name, *sub = field.split(".", 1)
    if sub:
        record[name][sub[0]] = value
    else:
        record[name] = value
    with pytest.raises(SchemaError) as caught:
        check_record(record, path)
    assert caught.value.file == str(path) and caught.value.field.split(".")[0] == name
    assert len(str(caught.value)) < 300 and "\n" not in str(caught.value)


def test_a_record_under_another_file_name_is_refused(stored):
    path, record = stored
    with pytest.raises(SchemaError, match="is not the file's name"):
        check_record(record, path.with_name("copy.json"))


def test_a_reached_status_needs_its_epoch_and_a_capped_one_none(stored):
    path, record = stored
    record["epochs_to"]["0.3"] = None
    with pytest.raises(SchemaError, match="disagrees"):
        check_record(record, path)


@pytest.mark.parametrize("payload, words", [
    (b"\x89PNG\x00\xff", "binary"), (b"{", "not valid JSON"), (b"[" * 100_000, "nesting"),
    (b"9" * 5000, "too long"),
])
def test_unreadable_json_is_one_schema_error(tmp_path, payload, words):
    path = tmp_path / "x.json"
    path.write_bytes(payload)
    with pytest.raises(SchemaError, match=words):
        read_json(path, "a record")
