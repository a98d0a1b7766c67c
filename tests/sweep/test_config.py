"""Sweep configs: presets validate, defaults and hashes behave, every bad value is one line."""
from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.sweep.config import TOP_KEYS, load_config, parse_config, preset_names
from bench.errors import UsageError
from lae_core import MODELS, OPTIMIZERS

from ..helpers import cli, smoke_config, write_config


def test_every_preset_validates(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")  # mnist only checks it is there
    assert set(preset_names()) >= {"smoke", "quick", "nightly-cpu", "fig4", "mnist"}
    for name in preset_names():
        config = load_config(name, {"data": {"path": str(tmp_path)}} if name == "mnist" else {})
        assert config.description and config.expected_cost


def test_quick_and_fig4_hold_their_grids():
    """quick: all six models, both optimizers, m = 1000, n = 5000, k up to 20, 3 seeds; fig4:
    the paper's k grid, one seed, stop_on_failure, the paper's rates."""
    quick, fig4 = load_config("quick"), load_config("fig4")
    assert quick.models == MODELS and quick.optimizers == ("sgd_nesterov", "adam")
    assert (quick.data.m, quick.data.n, quick.k, len(quick.seeds)) == (1000, 5000,
                                                                        (2, 5, 10, 20), 3)
    assert fig4.k == (2, 5, 10, 20, 50, 100, 200, 300, 400, 500)
    assert (fig4.max_epochs, len(fig4.seeds), fig4.stop_on_failure) == (50_000, 1, True)
    assert fig4.lr.lookup("nd_exp", "adam", 100) == 1e-2


def test_defaults_and_normalisation():
    config = parse_config({"models": ["rotation"], "k": [5, 2], "lr": "1e-3",
                           "seeds": {"count": 2, "start": 7},
                           "thresholds": [0.1, 0.5, 0.3]}, name="t")
    assert config.k == (2, 5) and config.seeds == (7, 8)
    assert config.lr.lookup("rotation", "adam", 2) == 1e-3  # YAML reads 1e-3 as text
    assert config.thresholds == (0.5, 0.3, 0.1) and config.headline == 0.3
    assert config.data.m == 1000 and config.optimizers == ("sgd_nesterov", "adam")
    assert parse_config({"models": ["vae"], "k": [2], "thresholds": [0.5, 0.2]},
                        name="t").headline == 0.2


def test_hash_ignores_descriptions_and_follows_results():
    base = parse_config(smoke_config(), name="a")
    assert parse_config(smoke_config(description="other"), name="b").hash == base.hash
    assert parse_config(smoke_config(max_epochs=10), name="a").hash != base.hash
    assert parse_config(smoke_config(lr=1e-3), name="a").hash != base.hash


def test_hyperparameter_overrides_resolve_per_k():
    import lae_core
    config = parse_config(smoke_config(hyperparameters={
        "non_uniform_sum": {"w_range": [0.1, 0.5]}, "nd": {"decay": 0.5}}), name="t")
    data = lae_core.synthetic(50, 100, keep_samples=False)
    lam = config.hyperparameters.resolve("non_uniform_sum", 3, data, "synthetic")["lam"]
    assert lam.tolist() == pytest.approx([0.01, 0.09, 0.25])
    keep = config.hyperparameters.resolve("nd", 3, data, "synthetic")["keep_probs"]
    assert keep.tolist() == [1, 0.5, 0.25]


@pytest.mark.parametrize("changes, message", [
    ({"models": ["rotation", "rotaton"]}, "models[1]: 'rotaton'"),
    ({"k": [2, 51]}, "k[1]: 51 is not allowed; expected an integer from 1 to 50"),
    ({"k": [2, 2]}, "k: [2, 2]"),
    ({"thresholds": [0.3, 1.0]}, "thresholds[1]: 1.0"),
    ({"headline": 0.2}, "headline: 0.2"),
    ({"seeds": {"count": 0}}, "seeds.count: 0"),
    ({"seeds": [-1]}, "seeds[0]: -1"),
    ({"lr": "fast"}, "lr: 'fast'"),
    ({"lr": 0}, "lr: 0"),
    ({"optimizers": ["gd"]}, "the paper's synthetic table has no rate for rotation/gd"),
    ({"formulation": "spectral"}, "formulation: 'spectral' is exact only"),
    ({"formulation": "covariance"}, "needs the samples"),
    ({"eval_every": 5000}, "eval_every: 5000"),
    ({"modles": ["vae"]}, "modles: unknown key"),
    ({"data": {"kind": "synthetic", "m": 1}}, "data.m: 1"),
    ({"data": {"kind": "mnist"}}, "data.path: missing"),
    ({"data": {"kind": "npy", "path": "nowhere.npy"}}, "nowhere.npy' is not a readable .npy file"),
    ({"data": {"kind": "synthetic", "path": "x"}}, "data.path: not used by kind synthetic"),
    ({"data": {"spectrum": {"kind": "explicit", "values": [1, 2]}}}, "data.spectrum.values"),
    ({"hyperparameters": {"rotation": {"lam": 1}}}, "hyperparameters.rotation.lam: unknown"),
    ({"hyperparameters": {"nd": {"decay": 1.5}}}, "hyperparameters.nd.decay: 1.5"),
    ({"stop_on_failure": "yes"}, "stop_on_failure: 'yes'"),
])
def test_invalid_values_name_key_value_and_allowed(tmp_path, changes, message):
    path = write_config(tmp_path / "bad.yaml", **changes)
    with pytest.raises(UsageError) as info:
        load_config(str(path))
    assert message in str(info.value) and str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_lr_from_a_table_file_or_tuned_file(tmp_path):
    from bench.sweep.lr_table import LrTable, save_table
    save_table(LrTable("tuned", {("rotation", "adam"): {2: 0.5, 4: 0.25}}), tmp_path / "t.csv")
    for lr in ("t.csv", "tuned:t.csv"):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(smoke_config(
            models=["rotation"], optimizers=["adam"], lr=lr)))
        config = load_config(str(tmp_path / "c.yaml"))
        assert [config.lr.lookup("rotation", "adam", k) for k in (2, 4)] == [0.5, 0.25]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(smoke_config(lr="tuned:t.csv")))
    with pytest.raises(UsageError, match="t.csv has no rate for rotation/sgd_nesterov"):
        load_config(str(tmp_path / "c.yaml"))


def test_npy_data_takes_m_from_the_file(tmp_path):
    import numpy as np
    np.save(tmp_path / "x.npy", np.ones((30, 7)))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(
        smoke_config(data={"kind": "npy", "path": "x.npy", "center": True}, k=[2, 7])))
    config = load_config(str(tmp_path / "cfg.yaml"))  # relative to the config file
    assert (config.data.m, config.data.n, config.data.center) == (7, 30, True)


# --- hypothesis: whatever is wrong, the CLI says it in one line and exits with 2 --------------

not_a_list = st.one_of(st.integers(), st.text(), st.just({}), st.just([]))
not_an_int = st.one_of(st.text(), st.floats(allow_nan=True), st.booleans(), st.lists(
    st.integers(), max_size=2))
not_a_bool = st.one_of(st.integers(), st.text(), st.floats(allow_nan=True))
not_numeric_text = st.text().filter(lambda s: not _is_number(s) and s != "paper")
bad_fraction = st.one_of(st.floats(min_value=1.0), st.floats(max_value=0.0),
                         st.just(math.nan), st.text(), st.booleans())


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


INVALID = st.one_of(
    st.tuples(st.just("models"), st.one_of(not_a_list, st.lists(
        st.text().filter(lambda s: s not in MODELS), min_size=1))),
    st.tuples(st.just("optimizers"), st.one_of(not_a_list, st.lists(
        st.text().filter(lambda s: s not in OPTIMIZERS), min_size=1))),
    st.tuples(st.just("k"), st.one_of(not_a_list, st.lists(
        st.one_of(st.integers(max_value=0), st.integers(min_value=51), not_an_int),
        min_size=1))),
    st.tuples(st.just("thresholds"), st.one_of(not_a_list, st.lists(bad_fraction, min_size=1))),
    st.tuples(st.just("seeds"), st.one_of(st.text(), st.lists(st.integers(max_value=-1),
                                                              min_size=1),
                                          st.fixed_dictionaries({"count": st.integers(
                                              max_value=0)}))),
    st.tuples(st.sampled_from(["max_epochs", "eval_every"]),
              st.one_of(not_an_int, st.integers(max_value=0))),
    st.tuples(st.sampled_from(["dtype", "backend", "formulation"]), not_numeric_text),
    st.tuples(st.sampled_from(["stop_on_failure", "history", "estimate_before_run"]),
              not_a_bool),
    st.tuples(st.just("lr"), st.one_of(st.floats(max_value=0.0), not_numeric_text,
                                       st.booleans(), st.lists(st.floats()))),
    st.tuples(st.text().filter(lambda s: s not in TOP_KEYS), st.integers()),
    st.tuples(st.just("data"), st.one_of(not_numeric_text, st.fixed_dictionaries(
        {"m": st.one_of(not_an_int, st.integers(max_value=1))}), st.fixed_dictionaries(
        {"kind": not_numeric_text}))),
    st.tuples(st.just("hyperparameters"), st.one_of(not_numeric_text, st.fixed_dictionaries(
        {"preset": not_numeric_text}))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change=INVALID)
def test_invalid_configs_exit_2_with_one_line(tmp_path_factory, change):
    key, value = change
    path = tmp_path_factory.mktemp("cfg") / "bad.yaml"
    path.write_text(yaml.safe_dump(smoke_config(**{key: value})))
    code, out, err = cli("run", path, "--out", path.parent / "run", "--quiet")
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("lae-bench: error: ")
    assert "Traceback" not in err and out == ""


@settings(max_examples=60, deadline=None)
@given(text=st.text())
def test_any_text_as_config_exits_2_with_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "bad.yaml"
    path.write_text(text)
    code, _, err = cli("run", path, "--out", path.parent / "run", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
