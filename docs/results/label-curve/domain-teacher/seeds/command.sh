#!/bin/sh
# The domain-teacher label curve (../command.sh: same config, teacher and anomalous_share 0.5) at 50 and 100 labels,
# each drawn with three subset seeds (seed 0 is the subset ../ drew), to see whether the points differ by more than
# the draw of the labels. BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
PYTHONUNBUFFERED=1 .venv/bin/logrl eval --config configs/templates-smollm2.yaml \
  --set "data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]" --set data.teacher.kind=domain --set sft.anomalous_share=0.5 \
  --set train.output_dir=runs/tpl-domain-curve --set data.output_dir=runs/tpl-domain-curve/data \
  --protocol label-curve --budgets ${BUDGETS:-50,100} --curve-seeds ${SEEDS:-0,1,2} --curve-epochs 3 \
  --out docs/results/label-curve/domain-teacher/seeds
