#!/bin/sh
# The seeds/ curve's 100-label draws (domain teacher, anomalies at half the SFT draws, 3 passes: 38 steps) with every
# SFT example answer-first (sft.fast_mode_fraction 1.0; the shipped recipe trains 30% answer-first, 70% rationale
# first): the curve measures fast mode, so here every step trains the mode it measures. BGL_CSV, SPIRIT_CSV: your
# LogPrompt template CSVs (not bundled).
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.5 \
  --set sft.fast_mode_fraction=1.0 --set train.output_dir=runs/tpl-domain-curve-fast1 \
  --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets ${BUDGETS:-100} --curve-seeds ${SEEDS:-0,1,2} --curve-epochs 3 \
  --out docs/results/label-curve/domain-teacher/fast-only
