#!/usr/bin/env bash
# DeepQMC side of the H2 benchmark, in an environment of its own.
#
#   bash benchmarks/qmc/run_deepqmc.sh OUT_DIR [deepqmc_h2.py options ...]
#
# On first use it builds benchmarks/_work/dqvenv from deepqmc-requirements.txt
# (needs Python >= 3.12: set PYTHON=/path/to/python3.12 if it is not found).
# Then it runs deepqmc_h2.py there in float64, pinned to one CPU (CPU=0 by
# default; JAX sizes its thread pool by the CPUs allowed, so two runs side by
# side take CPU=0 and CPU=1); the log, with wall time and peak memory from
# /usr/bin/time, goes to OUT_DIR.log. NICE=19 runs it at the lowest priority.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=benchmarks/_work/dqvenv
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
    echo "usage: bash $0 OUT_DIR [deepqmc_h2.py options ...]" >&2
    exit 2
fi

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.12 \
        "$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python 2>/dev/null | tail -n 1)" \
        python3; do
        if [ -n "$candidate" ] && "$candidate" -c \
            'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [ ! -x "$venv/bin/python" ]; then
    python=$(find_python) || {
        echo "error: no Python >= 3.12 found (DeepQMC 1.3 needs it); set PYTHON" >&2
        exit 2
    }
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet \
        -r benchmarks/qmc/deepqmc-requirements.txt
fi

export JAX_PLATFORMS=cpu JAX_ENABLE_X64=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
log="${1%/}.log"
mkdir -p "$(dirname "$log")"
status=0
taskset -c "${CPU:-0}" nice -n "${NICE:-0}" /usr/bin/time -v "$venv/bin/python" \
    benchmarks/qmc/deepqmc_h2.py "$@" > "$log" 2>&1 || status=$?
grep -E "deepqmc_h2: result:|^error:|Error" "$log" | tail -n 3 >&2 || true
grep -E "Elapsed \(wall|Maximum resident" "$log" >&2 || true
exit "$status"
