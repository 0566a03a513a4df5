#!/usr/bin/env bash
# Accuracy runs of dpl vmc, one after another on one thread each.
#
#   bash benchmarks/qmc/run_accuracy.sh He H2 H LiH Be
#
# Each system's run goes to runs/acc-SYSTEM/ (log: runs/acc-SYSTEM.log, with
# wall time and peak memory from /usr/bin/time). The numbers are copied by
# hand into wavefunctions/README.md.
set -u
cd "$(dirname "$0")/../.."
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p runs
for system in "$@"; do
    /usr/bin/time -v python -m deepmd_like vmc "wavefunctions/$system/input.yaml" \
        -o "runs/acc-$system" --overwrite --no-progress > "runs/acc-$system.log" 2>&1
done
