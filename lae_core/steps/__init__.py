"""The epoch engine: steps that own a batch's parameters and optimizer state and advance it.

The maths lives one folder up (``objectives``, ``optim``, ``metrics``, ``operators``); this
folder is only how an epoch of that maths is executed fast:

- ``interface``: ``Step``, the one interface every step implements and ``train`` drives.
- ``reference``: ``ReferenceStep``, the pure functions of ``objectives`` and ``optim`` on any
  array namespace: the oracle of every other step.
- ``packed``: ``PackedStep`` (persistent packed buffers, fused passes), ``CompiledStep``
  (Numba blocks on the CPU), ``GraphStep`` (CUDA graphs at small k on a GPU).
- ``kernels``: the fused passes and the k x k x m products per backend (NumPy, Numba, CUDA).
- ``cpu_block``: the Numba-compiled loops behind ``CompiledStep`` and ``NumbaKernels``.

``train.run_batch`` drives whichever step runs through ``interface.Step``.
"""
from .interface import STEPS, Step
from .reference import ReferenceStep

__all__ = ["STEPS", "ReferenceStep", "Step"]
