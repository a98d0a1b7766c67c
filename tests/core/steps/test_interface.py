"""Every step implements the one ``Step`` interface that the epoch loop is typed against."""
from __future__ import annotations

import inspect
import typing

import numpy as np
import pytest

from lae_core import train
from lae_core.steps import ReferenceStep, Step, kernels
from lae_core.steps.packed import CompiledStep, GraphStep, PackedStep, packed_step

from .helpers import build

METHODS = [name for name, member in vars(Step).items()
           if inspect.isfunction(member) and not name.startswith("_")]
KINDS = {
    "reference": lambda data: build(ReferenceStep, data, "rotation", "adam", "covariance"),
    "packed": lambda data: build(PackedStep, data, "vae", "adam", "covariance"),
    "compiled": lambda data: build(CompiledStep, data, "rotation", "sgd_nesterov", "spectral"),
    "graph": lambda data: build(GraphStep, data, "nd_exp", "gd", "spectral",
                                kern=kernels.NumpyKernels(), products=kernels.ArrayProducts(np)),
}


def test_the_interface_has_the_five_operations_the_loop_uses():
    assert sorted(METHODS) == ["evaluate", "host_params", "metrics", "retire", "run"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_step_satisfies_the_interface_with_its_signatures(data, kind):
    step = KINDS[kind](data)
    assert isinstance(step, Step)
    assert step.name == {"graph": "packed"}.get(kind, kind)   # no CUDA here: graph runs eagerly
    for method in METHODS:
        want = inspect.signature(getattr(Step, method))
        got = inspect.signature(getattr(type(step), method))
        assert list(got.parameters) == list(want.parameters), (kind, method)
        assert [p.default for p in got.parameters.values()] == \
            [p.default for p in want.parameters.values()], (kind, method)


def test_an_object_missing_an_operation_is_not_a_step(data):
    class NoRetire:
        name = "partial"

        def run(self, steps, cutoffs=None): ...
        def evaluate(self): ...
        def metrics(self): ...
        def host_params(self): ...
    assert not isinstance(NoRetire(), Step)


def test_the_epoch_loop_and_the_step_factories_are_typed_against_the_interface():
    for factory in (train.make_step, packed_step):
        assert typing.get_type_hints(factory)["return"] is Step
    assert typing.get_type_hints(train._Loop.__init__)["step"] is Step
