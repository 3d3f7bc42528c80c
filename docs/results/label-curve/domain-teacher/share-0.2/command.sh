#!/bin/sh
# Teacher or share? The domain-teacher curve changed two things from the first (rule-teacher) curve: the teacher and
# the anomalous share of the SFT draws (0.2 -> 0.5). This run keeps the domain teacher at the config's share, 0.2, at
# 100 labels, on the subsets ../seeds/ drew with seeds 0 and 1. BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs.
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.2 \
  --set train.output_dir=runs/tpl-domain-curve-share02 --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets 100 --curve-seeds ${SEEDS:-0,1} --curve-epochs 3 \
  --out docs/results/label-curve/domain-teacher/share-0.2
