#!/usr/bin/env bash
# Install the package with its test extras into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
exec python -m pytest -q -n 2 --dist loadgroup "$@"
