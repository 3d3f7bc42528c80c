#!/usr/bin/env bash
# Grounded decoding on HDFS: the committed models evaluated again with `--mode grounded` (the reasoning prompt,
# decoded so that every quote is text of the line it names: reward_workers/evidence_grammar.py), same test split.
# 1. the SFT+GRPO and SFT adapters of `make hdfs-experiment` (tiny model pretrained on the stored text);
# 2. those of docs/results/hdfs/pretrain-views (pretrained on perturbed views).
# Then paired bootstraps of grounded against free reasoning, same model, same rows.
set -euo pipefail
.venv/bin/logrl eval --config configs/hdfs.yaml --adapter runs/hdfs/adapters/v40 --arm sft=runs/hdfs/adapters/v0 \
    --mode grounded --out docs/results/hdfs/grounded
views=(--config configs/hdfs.yaml --set model.path=runs/hdfs-views/tiny-model --set train.output_dir=runs/hdfs-views)
.venv/bin/logrl eval "${views[@]}" --adapter runs/hdfs-views/adapters/v40 --arm sft=runs/hdfs-views/adapters/v0 \
    --mode grounded --out docs/results/hdfs/grounded/pretrain-views
{
    .venv/bin/python -m evaluation.paired docs/results/hdfs:sft+grpo/reason docs/results/hdfs/grounded:adapter/grounded
    .venv/bin/python -m evaluation.paired docs/results/hdfs:sft/reason docs/results/hdfs/grounded:sft/grounded
    .venv/bin/python -m evaluation.paired docs/results/hdfs/pretrain-views:adapter/reason \
        docs/results/hdfs/grounded/pretrain-views:adapter/grounded
    .venv/bin/python -m evaluation.paired docs/results/hdfs/pretrain-views:sft/reason \
        docs/results/hdfs/grounded/pretrain-views:sft/grounded
} | tee docs/results/hdfs/grounded/paired.txt
