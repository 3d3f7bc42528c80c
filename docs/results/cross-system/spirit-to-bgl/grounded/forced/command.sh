#!/bin/bash
# Spirit -> BGL with budget forcing (eval.force_verdict): ../command.sh's grounded and free-reasoning evals again,
# same adapter, base and 400 BGL templates, where a rationale cut by its budget is closed and asked for the verdict.
set -e
cd "$(dirname "$0")/../../../../../.."
source docs/results/cross-system/env.sh
args=$(recipe $S spirit)
args="$args --set eval.force_verdict=true"
grounded=docs/results/cross-system/spirit-to-bgl/grounded
out=$grounded/forced
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --no-adapter --arm sft-domain-teacher=runs/cross-spirit/adapters/v0 --mode grounded --limit 400 --out $out
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --adapter runs/cross-spirit/adapters/v0 --mode reason --limit 400 --out $out/reason
{
  .venv/bin/python -m evaluation.paired $grounded:sft-domain-teacher/grounded $out:sft-domain-teacher/grounded
  .venv/bin/python -m evaluation.paired $grounded/reason:adapter/reason $out/reason:adapter/reason
  .venv/bin/python -m evaluation.paired docs/results/cross-system/spirit-to-bgl:sft-domain-teacher/fast $out:sft-domain-teacher/grounded
} | tee $out/paired.txt
