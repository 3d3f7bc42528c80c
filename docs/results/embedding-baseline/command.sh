#!/bin/sh
# The sentence-embedding baseline (all-MiniLM-L6-v2 + logistic regression) added to the committed headline reports
# without running a model: `logrl eval --reanalyse --add-baselines` rebuilds each report's rows with the config,
# --data and --limit it was written with, fits every configured baseline on its train split, checks that every
# number the report held for its arms and old baselines comes back, and recomputes the comparisons with the best
# baseline. Then wins.md is built again. BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
set -e
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
L=".venv/bin/logrl eval --reanalyse --add-baselines"
T="--config configs/templates-smollm2.yaml --set data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]"
$L $T --set train.output_dir=runs/reanalyse/tpl-rule --set data.output_dir=runs/reanalyse/tpl-rule/data \
  --out docs/results/templates
$L $T --set data.teacher.kind=domain --set train.output_dir=runs/reanalyse/tpl \
  --set data.output_dir=runs/reanalyse/tpl-data --out docs/results/templates/domain-teacher
cross() {  # SOURCE_CSV NAME TARGET_CSV OUT: the recipe of `make cross-system-experiment`
  $L --config configs/templates-smollm2.yaml --set "data.paths=[$1]" --set data.teacher.kind=domain \
    --set data.train_fraction=0.9 --set sft.steps=60 --set train.output_dir=runs/reanalyse/cross-$2 \
    --set data.output_dir=runs/reanalyse/cross-$2/data --protocol cross-system --data "templates:$3" --limit 400 \
    --out "$4"
}
cross "$BGL_CSV" bgl "$SPIRIT_CSV" docs/results/cross-system/bgl-to-spirit
cross "$SPIRIT_CSV" spirit "$BGL_CSV" docs/results/cross-system/spirit-to-bgl
H="--config configs/hdfs.yaml --set train.output_dir=runs/reanalyse/hdfs --set data.output_dir=runs/reanalyse/hdfs/data"
$L $H --out docs/results/hdfs
$L $H --out docs/results/hdfs/sft-same-budget
sh docs/results/wins.sh
# The label curves (each point's subset drawn again from its curve.json: budget and seed; baselines fitted on it).
C="--protocol label-curve --reanalyse --add-baselines --config configs/templates-smollm2.yaml"
C="$C --set data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}]"
D="--set data.teacher.kind=domain --set data.output_dir=runs/tpl-domain-curve/data"
for out in seeds budget-200 .; do
  .venv/bin/logrl eval $C $D --set sft.anomalous_share=0.5 --set train.output_dir=runs/tpl-domain-curve \
    --out docs/results/label-curve/domain-teacher/$out
done
.venv/bin/logrl eval $C $D --set sft.anomalous_share=0.2 --set train.output_dir=runs/tpl-domain-curve-share02 \
  --out docs/results/label-curve/domain-teacher/share-0.2
.venv/bin/logrl eval $C --set train.output_dir=runs/tpl-rule --set data.output_dir=runs/tpl-rule/data \
  --out docs/results/label-curve
