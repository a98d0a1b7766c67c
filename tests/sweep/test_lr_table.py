"""The paper's learning-rate table, its k-range rule, and table files."""
from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.sweep.lr_table import PAPER_K, load_table, paper_table, save_table


@pytest.mark.parametrize("model, optimizer, k, lr", [
    ("rotation", "sgd_nesterov", 500, 1e-4), ("rotation", "adam", 2, 3e-4),
    ("nd_exp", "sgd_nesterov", 200, 1e-3), ("nd_exp", "adam", 50, 3e-3),
    ("nd_exp", "adam", 100, 1e-2), ("nd", "adam", 20, 1e-2), ("nd", "adam", 50, 3e-3),
    ("non_uniform_sum", "adam", 300, 3e-3), ("uniform_sum", "sgd_nesterov", 5, 1e-3),
    ("vae", "sgd_nesterov", 10, 3e-4), ("vae", "adam", 20, 3e-3), ("vae", "adam", 50, 1e-3),
])
def test_paper_synthetic_rates_match_spec(model, optimizer, k, lr):
    assert paper_table().lookup(model, optimizer, k) == lr


@pytest.mark.parametrize("k, lr", [(1, 3e-3), (70, 3e-3), (75, 3e-3), (76, 1e-2),
                                   (1000, 1e-2)])
def test_k_outside_the_paper_list_takes_the_nearest_range(k, lr):
    # nd_exp / Adam: 3e-3 for k <= 50, 1e-2 for k >= 100; k = 75 is a tie: the smaller range.
    assert paper_table().lookup("nd_exp", "adam", k) == lr


@pytest.mark.parametrize("k", [1, 20, 300])
def test_mnist_rates_apply_at_any_k(k):
    table = paper_table("mnist")
    assert table.lookup("non_uniform_sum", "sgd_nesterov", k) == 3e-4
    assert table.lookup("rotation", "adam", k) == 1e-3


def test_paper_table_has_no_gd():
    with pytest.raises(KeyError, match="rotation/gd"):
        paper_table().lookup("rotation", "gd", 2)


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_table_files_round_trip(tmp_path, suffix):
    table = paper_table()
    save_table(table, tmp_path / f"rates{suffix}")
    loaded = load_table(tmp_path / f"rates{suffix}")
    assert loaded.rows() == table.rows()
    for k in (*PAPER_K, 1, 7, 75, 1000):
        assert loaded.lookup("vae", "adam", k) == table.lookup("vae", "adam", k)


def test_yaml_table_file_format(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text("rotation:\n  sgd_nesterov: 1e-4\n  adam: {2: 3.0e-4, 50: 1.0e-3}\n")
    table = load_table(path)
    assert table.lookup("rotation", "sgd_nesterov", 123) == 1e-4
    assert [table.lookup("rotation", "adam", k) for k in (2, 26, 27, 500)] == [
        3e-4, 3e-4, 1e-3, 1e-3]


@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "rotaton:\n  adam: 1e-3\n", "model: 'rotaton' is not allowed; expected one of"),
    ("bad.yaml", "rotation:\n  adamw: 1e-3\n", "optimizer: 'adamw' is not allowed"),
    ("bad.yaml", "rotation:\n  adam: -1\n", "positive finite"),
    ("bad.yaml", "rotation:\n  adam: {0: 1e-3}\n", "positive integer"),
    ("bad.yaml", "rotation: [1, 2]\n", "optimizer -> rate"),
    ("bad.yaml", "rotation: {adam: 1e-3\n", "not valid YAML"),
    ("bad.csv", "model,optimizer,k,lr\nrotation,adam,2,1e-3\nrotation,adam,2,3e-3\n", "second"),
    ("bad.csv", "model,opt,k,lr\nrotation,adam,2,1e-3\n", "header"),
    ("bad.csv", "model,optimizer,k,lr\nrotation,adam,*,1e-3\nrotation,adam,2,3e-3\n", "second"),
    ("bad.txt", "", "must end in"),
])
def test_invalid_table_files_name_the_entry(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_table(tmp_path / name)
    assert "\n" not in str(info.value)
