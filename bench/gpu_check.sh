#!/usr/bin/env bash
# GPU check: one script, under 8 minutes, on any machine with an NVIDIA GPU.
# Records every usable backend's speed table (`recouple bench`, NumPy vs JAX
# vs CuPy in one run, with the measured GEMM rates) and runs the CuPy/JAX test
# subset (each kernel equal to NumPy on the device). Results go to $OUT
# (default ./gpu-check): stages.txt, info.txt, bench.json, bench.md,
# bench.txt, tests.txt.
#
#   bash bench/gpu_check.sh                 # from the repository root
#
# It uses the machine's python3 and the CuPy/JAX already installed there (GPU
# images ship them). recouple's other dependencies are installed, without
# touching CuPy/JAX, from wheels in bench/wheels/ when that folder exists (for
# machines that reach no package registry; fill it on a connected machine with
#   python3 -m pip download -d bench/wheels dask distributed nibabel \
#       array-api-compat array-api-strict nilearn pytest-benchmark
# ), else from the registry. Each stage has its own time limit, so a slow
# stage cannot take the others' time; one that runs out is recorded and the
# script goes on. BUDGET (default 470 s) bounds the whole script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check}"
mkdir -p "$OUT"
: >"$OUT/stages.txt"
start=$(date +%s)
BUDGET="${BUDGET:-470}"   # seconds for the whole script (under 8 minutes)
stage() { echo "== $1 ($(( $(date +%s) - start )) s)" | tee -a "$OUT/stages.txt"; }
# seconds left of the budget, less what the later stages keep for themselves ($1)
left() { local l=$(( BUDGET - ($(date +%s) - start) - $1 )); [ "$l" -gt 10 ] && echo "$l" || echo 10; }
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RECOUPLE_CACHE_DIR="${RECOUPLE_CACHE_DIR:-$PWD/.gpu-check-cache}"

stage "dependencies"
deps="dask[array] distributed nibabel array-api-compat array-api-strict nilearn pytest-benchmark"
if [ -d bench/wheels ]; then
    # shellcheck disable=SC2086
    timeout 90 "$PY" -m pip install --quiet --no-index --find-links bench/wheels $deps >"$OUT/install.txt" 2>&1
else
    # shellcheck disable=SC2086
    timeout 90 "$PY" -m pip install --quiet $deps >"$OUT/install.txt" 2>&1
fi || echo "some dependencies could not be installed; see install.txt" | tee -a "$OUT/stages.txt"

stage "recouple info"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import cupy, jax; print('cupy', cupy.__version__, '| jax', jax.__version__, jax.devices())" 2>&1
  timeout 60 "$PY" -m recouple info --size 4096; } >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

stage "recouple bench: every usable backend (default sizes; quick sizes if that runs out)"
# the default sizes get what is left after keeping 90 s for quick sizes and 150 s for the tests
if ! timeout "$(left 240)" "$PY" -m recouple bench --repeats 1 --json "$OUT/bench.json" \
        --markdown "$OUT/bench.md" >"$OUT/bench.txt" 2>&1; then
    echo "default-size bench did not finish in time; quick sizes instead" | tee -a "$OUT/stages.txt"
    timeout "$(left 150)" "$PY" -m recouple bench --quick --repeats 1 --json "$OUT/bench.json" \
        --markdown "$OUT/bench.md" >"$OUT/bench.txt" 2>&1 || echo "quick bench failed; see bench.txt" | tee -a "$OUT/stages.txt"
fi
tail -n 40 "$OUT/bench.txt"

stage "tests: the CuPy and JAX subset"
timeout "$(left 5)" "$PY" -m pytest -q -p no:cacheprovider -k "cupy or jax" >"$OUT/tests.txt" 2>&1
echo "pytest exit $?" >>"$OUT/tests.txt"
tail -n 15 "$OUT/tests.txt"
stage "done"
