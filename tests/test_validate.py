"""Configs, learning-rate tables and thresholds files are checked by one module: the same bad
value reads the same way in each (file, key path, value, what is allowed), in one line."""
from __future__ import annotations

import re

import pytest

from bench.analysis.thresholds import load_thresholds
from bench.errors import UsageError
from bench.sweep.config import load_config
from bench.sweep.lr_table import load_table

from .helpers import write_config

# FILE: [where in it:] KEY: 'x' is not allowed; expected WHAT
ONE_LINE = re.compile(r"^.*\.yaml: .+: 'x' is not allowed; expected [^:]+$")


def bad_config(tmp_path):
    load_config(str(write_config(tmp_path / "c.yaml", dtype="x")))


def bad_table(tmp_path):
    (tmp_path / "t.yaml").write_text("rotation:\n  adam: x\n")
    load_table(tmp_path / "t.yaml")


def bad_thresholds(tmp_path):
    (tmp_path / "h.yaml").write_text("default: {alpha: x}\n")
    load_thresholds(tmp_path / "h.yaml")


@pytest.mark.parametrize("load", [bad_config, bad_table, bad_thresholds])
def test_one_message_shape_for_every_file(tmp_path, load):
    with pytest.raises(UsageError) as info:
        load(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "\n" not in message
    assert ONE_LINE.match(message), message
