"""Performance tools: per-epoch speed against the matmul bound (speed), learning-rate tuning in
one batch (tune) and the prepared GPU check (gpu_check, gpu_check.sh, data/ with the reference
GPU timings)."""
