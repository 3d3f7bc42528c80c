#!/bin/sh
# Cross-system with every SFT example answer-first (sft.fast_mode_fraction 1.0; the committed runs trained 30%):
# SFT on one system's templates (domain teacher, 60 steps, the recipe of env.sh), fast mode on 400 sampled
# templates of the other, baselines fitted on the source, then paired with the committed arm on the same rows.
# BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
set -e
cd "$(dirname "$0")/../../../.."
. docs/results/cross-system/env.sh
run() {  # SOURCE_CSV NAME TARGET_CSV OUT COMMITTED_SIDE
  args="$(recipe $1 $2-fast1) --set sft.fast_mode_fraction=1.0"
  [ -f runs/cross-$2-fast1/adapters/v0/adapter_model.safetensors ] || .venv/bin/logrl sft $args
  .venv/bin/logrl eval $args --protocol cross-system --data templates:$3 \
    --adapter runs/cross-$2-fast1/adapters/v0 --mode fast --limit 400 --out $4
  .venv/bin/python -m evaluation.paired $5 $4:adapter/fast | tee $4/paired.txt
}
run $B bgl $S docs/results/cross-system/fast-only/bgl-to-spirit docs/results/cross-system/bgl-to-spirit:adapter/fast
run $S spirit $B docs/results/cross-system/fast-only/spirit-to-bgl \
  docs/results/cross-system/spirit-to-bgl:sft-domain-teacher/fast
