"""The analysis layer: statistics over stored records (stats), the Figure 4 table (table), the
regression gate (compare, compare_render, thresholds, timing), figures (plots) and the HTML
report. Everything here reads run directories only; nothing trains or computes a model.

Layer: imports lae_core, the ground modules and bench.sweep (the store, the record type);
imported by perf and cli.
"""
