"""The performance layer: tools that train or compute to measure. Per-epoch speed against the
matmul bound (speed), learning-rate tuning in one batch (tune), the Hessian's conditioning
against k (hessian), interleaved timing of two versions (interleave), the timing gate's own
check (gate_check) and the prepared GPU check (gpu_check, gpu_check.sh, data/ with the
reference GPU timings).

Layer: imports lae_core, the ground modules, bench.sweep and bench.analysis; imported only by
the cli.
"""
