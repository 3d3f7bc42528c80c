#!/bin/bash
# Spirit -> BGL in grounded mode: the adapter of ../command.sh (SFT on Spirit templates only, domain teacher) and
# the zero-shot base, on the same stratified 400-template BGL sample, decoded under each prompt's evidence grammar
# (contract/evidence_grammar.py); the same adapter's free reasoning; paired bootstraps against fast and reasoning.
set -e
cd "$(dirname "$0")/../../../../.."
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 \
  VLLM_CPU_OMP_THREADS_BIND=nobind VLLM_CACHE_ROOT=$PWD/.cache/vllm TORCH_EXTENSIONS_DIR=$PWD/.cache/torch_extensions \
  TMPDIR=$PWD/.cache/tmp PYTHONUNBUFFERED=1
mkdir -p $TMPDIR
S=${SPIRIT_CSV:?set SPIRIT_CSV}
B=${BGL_CSV:?set BGL_CSV}
args="--config configs/templates-smollm2.yaml --set data.paths=[$S] --set data.teacher.kind=domain --set data.train_fraction=0.9 --set sft.steps=60 --set train.output_dir=runs/cross-spirit --set data.output_dir=runs/cross-spirit/data"
out=docs/results/cross-system/spirit-to-bgl/grounded
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --no-adapter --arm sft-domain-teacher=runs/cross-spirit/adapters/v0 --mode grounded --limit 400 --out $out
# Free reasoning on the same rows, to tell the grammar's effect from reasoning's.
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --adapter runs/cross-spirit/adapters/v0 --mode reason --limit 400 --out $out/reason
for first in docs/results/cross-system/spirit-to-bgl:sft-domain-teacher/fast $out/reason:adapter/reason; do
  .venv/bin/python -m evaluation.paired $first $out:sft-domain-teacher/grounded
done | tee $out/paired.txt
