#!/bin/sh
# Where in the validation gap a fast arm's threshold goes: eval's edge rule against midpoint, on the nine
# domain-teacher label-curve reports (50, 100, 200 labels x three subset seeds) and HDFS's tiny base in fast mode
# (hdfs-base/command.sh; hdfs-spread/command.sh with the validation slice drawn across the training period), all of
# which keep validation.jsonl; then which HDFS blocks the validation slices hold (replication.md).
# The curve commands resume their adapters (SFT only where one is missing) and write the reports again; then the
# comparison reads them. BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
set -e
sh docs/results/label-curve/domain-teacher/seeds/command.sh
sh docs/results/label-curve/domain-teacher/budget-200/command.sh
sh docs/results/thresholds/hdfs-base/command.sh
sh docs/results/thresholds/hdfs-spread/command.sh
S=docs/results/label-curve/domain-teacher/seeds B=docs/results/label-curve/domain-teacher/budget-200
.venv/bin/python -m evaluation.threshold_rules \
  "50 labels, seed 0=$S/n50" "50 labels, seed 1=$S/n50-s1" "50 labels, seed 2=$S/n50-s2" \
  "100 labels, seed 0=$S/n100" "100 labels, seed 1=$S/n100-s1" "100 labels, seed 2=$S/n100-s2" \
  "200 labels, seed 0=$B/n200" "200 labels, seed 1=$B/n200-s1" "200 labels, seed 2=$B/n200-s2" \
  "HDFS, tiny base=docs/results/thresholds/hdfs-base" \
  "HDFS, tiny base, validation spread=docs/results/thresholds/hdfs-spread" \
  --out docs/results/thresholds/rules.md
.venv/bin/python -m evaluation.pattern_slices "to replicate" --with invalidSet \
  "latest=docs/results/thresholds/hdfs-base" "spread=docs/results/thresholds/hdfs-spread" \
  --out docs/results/thresholds/replication.md
