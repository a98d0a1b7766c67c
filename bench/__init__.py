"""bench: the lae-bench harness (sweeps, results with provenance, tables, plots, regression
gates and the ``lae-bench`` command). Numerical work lives in ``lae_core``."""
