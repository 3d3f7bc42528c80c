#!/bin/sh
# The seeds/ curve's 100-label draws (domain teacher, anomalies at half the SFT draws, 3 passes: 38 steps) with every
# SFT example answer-first (sft.fast_mode_fraction 1.0; the shipped recipe trains 30% answer-first, 70% rationale
# first): the curve measures fast mode, so here every step trains the mode it measures. BGL_CSV, SPIRIT_CSV: your
# LogPrompt template CSVs (not bundled). BUDGETS: the committed curve ran 100, then 50,100,200, then 25,all (it grows).
# Then the 200-label draws paired with the shipped recipe's (../budget-200/) on the same subsets:
#   for p in n200 n200-s1 n200-s2; do .venv/bin/python -m evaluation.paired \
#     docs/results/label-curve/domain-teacher/budget-200/$p:adapter/fast \
#     docs/results/label-curve/domain-teacher/fast-only/$p:adapter/fast; done > .../fast-only/paired-200.txt
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.5 \
  --set sft.fast_mode_fraction=1.0 --set train.output_dir=runs/tpl-domain-curve-fast1 \
  --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets ${BUDGETS:-100} --curve-seeds ${SEEDS:-0,1,2} --curve-epochs 3 \
  --out docs/results/label-curve/domain-teacher/fast-only
