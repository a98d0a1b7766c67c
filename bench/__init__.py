"""bench: the lae-bench harness (sweeps, results with provenance, tables, plots, regression
gates and the ``lae-bench`` command). Numerical work lives in ``lae_core``.

Layers, lowest first; a module imports only its own layer or lower ones (tests/test_layers.py
holds this): lae_core < bench ground (errors, paths, formatting, validate) < bench.sweep <
bench.analysis < bench.perf < bench.cli.
"""
