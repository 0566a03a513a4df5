#!/usr/bin/env bash
# The main job on the data shipped in the repository, into a fresh run folder
# under runs/: check and summarise datasets/water.h5.
set -euo pipefail
cd "$(dirname "$0")/.."
DPL_EXTRAS=plot . scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
run="$(python -c 'from deepmd_like.fileio import fresh_run_dir; print(fresh_run_dir("runs", "main"))')"
echo "run folder: $run"
set -x
dpl data check datasets/water.h5 | tee "$run/check.txt"
dpl data info datasets/water.h5 | tee "$run/info.txt"
