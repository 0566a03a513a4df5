# Source this file: it creates (once) and activates the virtual environment
# .venv with the package and the extras named in DPL_EXTRAS installed.
#
# torch is installed first and pinned, because an unpinned torch lets pip pick
# whatever build it likes. An environment that already has torch keeps it
# (e.g. a CUDA build on a GPU machine); DPL_TORCH_SPEC overrides the pin and
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL choose a wheel index as usual.
set -e
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${DPL_VENV:-$_root/.venv}"
_python="${PYTHON:-python3}"
if [ ! -x "$_venv/bin/python" ]; then
    "$_python" -m venv "$_venv"
fi
# shellcheck disable=SC1091
. "$_venv/bin/activate"
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install --quiet --disable-pip-version-check \
        "${DPL_TORCH_SPEC:-torch==2.13.0}"
fi
python -m pip install --quiet --disable-pip-version-check \
    -e "$_root[${DPL_EXTRAS:-test}]"
