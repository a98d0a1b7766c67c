"""The sweep layer: configuration (config, learning-rate tables), execution (runner, the Dask
scheduler in distributed), storage (store, record, lock) and provenance (env). It writes
results; it reads back only its own run directory (to resume).

Layer: above lae_core and the ground modules (errors, paths, formatting, validate), which are
all it imports; below analysis, perf and cli. What the sweep needs that a higher layer also
uses lives here: censored medians (censored), flop accounting (flops), the reference clock
(reference).
"""
