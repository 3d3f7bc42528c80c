#!/bin/bash
# Spirit -> BGL in grounded mode: the adapter of ../command.sh (SFT on Spirit templates only, domain teacher) and
# the zero-shot base, on the same stratified 400-template BGL sample, decoded under each prompt's evidence grammar
# (contract/evidence_grammar.py); the same adapter's free reasoning; paired bootstraps against fast and reasoning.
set -e
cd "$(dirname "$0")/../../../../.."
source docs/results/cross-system/env.sh
args=$(recipe $S spirit)
out=docs/results/cross-system/spirit-to-bgl/grounded
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --no-adapter --arm sft-domain-teacher=runs/cross-spirit/adapters/v0 --mode grounded --limit 400 --out $out
# Free reasoning on the same rows, to tell the grammar's effect from reasoning's.
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --adapter runs/cross-spirit/adapters/v0 --mode reason --limit 400 --out $out/reason
for first in docs/results/cross-system/spirit-to-bgl:sft-domain-teacher/fast $out/reason:adapter/reason; do
  .venv/bin/python -m evaluation.paired $first $out:sft-domain-teacher/grounded
done | tee $out/paired.txt
