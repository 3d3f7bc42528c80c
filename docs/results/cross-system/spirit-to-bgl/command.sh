#!/bin/bash
# Spirit -> BGL cross-system (issue 17): same recipe as make cross-system-experiment's second pair, eval on a
# stratified 400-template sample of BGL in fast mode (as BGL -> Spirit was run).
set -e
cd "$(dirname "$0")/../../../.."
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 \
  VLLM_CPU_OMP_THREADS_BIND=nobind VLLM_CACHE_ROOT=$PWD/.cache/vllm TORCH_EXTENSIONS_DIR=$PWD/.cache/torch_extensions \
  TMPDIR=$PWD/.cache/tmp PYTHONUNBUFFERED=1
mkdir -p $TMPDIR
S=${SPIRIT_CSV:?set SPIRIT_CSV}
B=${BGL_CSV:?set BGL_CSV}
args="--config configs/templates-smollm2.yaml --set data.paths=[$S] --set data.teacher.kind=domain --set data.train_fraction=0.9 --set sft.steps=60 --set train.output_dir=runs/cross-spirit --set data.output_dir=runs/cross-spirit/data"
date
.venv/bin/logrl sft $args
date
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --no-adapter --arm sft-domain-teacher=runs/cross-spirit/adapters/v0 --mode fast --limit 400 --out runs/cross-spirit/eval
date
