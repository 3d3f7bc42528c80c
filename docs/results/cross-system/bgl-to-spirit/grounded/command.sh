#!/bin/bash
# BGL -> Spirit with a rationale: `make cross-system-experiment`'s first pair again (SFT on BGL templates only,
# domain teacher, 60 steps; its fast-mode report is ../report.md, 2026-12-02), then the same 400 Spirit templates
# in fast mode (to check the adapter reproduces), and in grounded and free reasoning with budget forcing.
set -e
cd "$(dirname "$0")/../../../../.."
source docs/results/cross-system/env.sh
args="$(recipe $B bgl) --set eval.force_verdict=true"
out=docs/results/cross-system/bgl-to-spirit/grounded
[ -f runs/cross-bgl/adapters/v0/adapter_model.safetensors ] || .venv/bin/logrl sft $args
.venv/bin/logrl eval $args --protocol cross-system --data templates:$S --adapter runs/cross-bgl/adapters/v0 \
  --mode all --limit 400 --out $out
{
  .venv/bin/python -m evaluation.paired docs/results/cross-system/bgl-to-spirit:adapter/fast $out:adapter/fast
  .venv/bin/python -m evaluation.paired $out:adapter/fast $out:adapter/grounded
  .venv/bin/python -m evaluation.paired $out:adapter/reason $out:adapter/grounded
} | tee $out/paired.txt
