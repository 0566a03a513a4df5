#!/usr/bin/env bash
# The main job on the data shipped in the repository, into a fresh run folder
# under runs/:
#   1. check and summarise datasets/water.h5 (64 H2O, 400 DFT frames);
#   2. train a short DeepPot-SE potential on data_0..data_2 and test it on data_3;
#   3. run a short NVT simulation of the water box with the shipped potential
#      (potentials/water-se_e2_a/model.pt) and report the O-O RDF first peak.
# Never touches the shipped datasets/ or potentials/.
set -euo pipefail
cd "$(dirname "$0")/.."
DPL_EXTRAS=plot . scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
run="$(python -c 'from deepmd_like.fileio import fresh_run_dir; print(fresh_run_dir("runs", "main"))')"
echo "== run folder: $run"

echo "== 1. dataset check and summary"
dpl data check datasets/water.h5 | tee "$run/data-check.txt"
dpl data info datasets/water.h5 | tee "$run/data-info.txt"

echo "== 2. short training (300 steps) and test on data_3"
dpl train potentials/water-se_e2_a/input-short.json -o "$run/train"
dpl test -m "$run/train/checkpoint.pt" -s datasets/water.h5:data_3 \
    --json "$run/test-data_3.json" --plots "$run/plots" | tee "$run/test-data_3.txt"

echo "== 3. 0.2 ps NVT of the water box with the shipped potential"
dpl md md/water/short.yaml -o "$run/md-water" --no-progress | tee "$run/md-water.txt"

echo "== done: results in $run"
