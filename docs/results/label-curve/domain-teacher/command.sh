#!/bin/sh
# Label curve at 25, 50 and 100 labels (BUDGETS) with the domain teacher and anomalous_share 0.5 (the first curve used the rule teacher
# and 0.2, and collapsed to `normal`). BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.5 \
  --set train.output_dir=runs/tpl-domain-curve --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets ${BUDGETS:-25,50,100} --curve-epochs 3 --out docs/results/label-curve/domain-teacher
