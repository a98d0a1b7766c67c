"""The analysis layer: statistics over stored records (stats), the Figure 4 table (table), the
regression gate (compare, compare_render, thresholds), figures (plots) and the HTML report.
Everything here reads run directories only; nothing trains."""
