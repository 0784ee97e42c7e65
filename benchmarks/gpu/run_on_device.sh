#!/usr/bin/env bash
# The one device call for a session lent an NVIDIA H200: GPU benchmark, then the runtime tests on CUDA.
# Prepare here first (wheels of what the device image lacks, for its Python 3.12):
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d .whl jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
#     referencing==0.37.0 rpds-py==2026.9.1 picklescan==1.0.5
# then run `bash benchmarks/gpu/run_on_device.sh` there with carry [".whl"] and timeout_s 560.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
timeout 330 python3 benchmarks/gpu/gpu_bench.py 2>&1 | tee "$OUT/gpu_log.txt"
timeout 150 python3 -m pytest tests/test_runtime.py tests/test_speed.py tests/test_cli.py -q -p no:cacheprovider 2>&1 | tail -25 | tee "$OUT/pytest_gpu.txt"
