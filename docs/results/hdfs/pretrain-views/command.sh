#!/usr/bin/env bash
# `make hdfs-experiment` again after the tiny model's pretraining moved to a fresh perturbed view per draw (line
# numbers shifted, groups reordered), on the same prepared data (runs/hdfs/data) and config; its own model and run
# folder. Then the paired bootstraps against the committed SFT+GRPO arm (pretraining on the stored text).
set -euo pipefail
common=(--config configs/hdfs.yaml --set model.path=runs/hdfs-views/tiny-model --set train.output_dir=runs/hdfs-views)
.venv/bin/logrl train "${common[@]}" --set train.steps=40
.venv/bin/logrl eval "${common[@]}" --adapter runs/hdfs-views/adapters/v40 --arm sft=runs/hdfs-views/adapters/v0 \
    --out docs/results/hdfs/pretrain-views
for mode in reason fast; do
    .venv/bin/python -m evaluation.paired docs/results/hdfs:sft+grpo/$mode docs/results/hdfs/pretrain-views:adapter/$mode
done | tee docs/results/hdfs/pretrain-views/paired.txt
