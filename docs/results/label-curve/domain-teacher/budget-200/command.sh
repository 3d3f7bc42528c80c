#!/bin/sh
# The domain-teacher label curve's 200-label point (../command.sh ran 25, 50 and 100; ../seeds/ redrew 50 and 100):
# same config, teacher and anomalous_share 0.5, three subset seeds (seed 0 is the data seed's subset, the one drawn
# first). BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.5 \
  --set train.output_dir=runs/tpl-domain-curve --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets 200 --curve-seeds 0,1,2 --curve-epochs 3 \
  --out docs/results/label-curve/domain-teacher/budget-200
