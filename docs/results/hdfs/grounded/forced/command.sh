#!/usr/bin/env bash
# Budget forcing on HDFS (eval.force_verdict): ../command.sh's grounded evals again, where a rationale its 96-token
# budget cuts before the answer is closed where it stopped and asked for the verdict (as fast mode asks it).
# Then paired bootstraps against the same arms' grounded decoding without forcing and their free reasoning.
set -euo pipefail
force=(--mode grounded --set eval.force_verdict=true)
views=(--config configs/hdfs.yaml --set model.path=runs/hdfs-views/tiny-model --set train.output_dir=runs/hdfs-views)
.venv/bin/logrl eval "${views[@]}" --adapter runs/hdfs-views/adapters/v40 --arm sft=runs/hdfs-views/adapters/v0 \
    "${force[@]}" --out docs/results/hdfs/grounded/forced/pretrain-views
.venv/bin/logrl eval --config configs/hdfs.yaml --adapter runs/hdfs/adapters/v40 --arm sft=runs/hdfs/adapters/v0 \
    "${force[@]}" --out docs/results/hdfs/grounded/forced
g=docs/results/hdfs/grounded
{
    for arm in adapter sft; do
        .venv/bin/python -m evaluation.paired $g/pretrain-views:$arm/grounded $g/forced/pretrain-views:$arm/grounded
        .venv/bin/python -m evaluation.paired docs/results/hdfs/pretrain-views:$arm/reason \
            $g/forced/pretrain-views:$arm/grounded
    done
    .venv/bin/python -m evaluation.paired $g:adapter/grounded $g/forced:adapter/grounded
    .venv/bin/python -m evaluation.paired docs/results/hdfs:sft+grpo/reason $g/forced:adapter/grounded
} | tee docs/results/hdfs/grounded/forced/paired.txt
# SFT for the same wall time as SFT+GRPO (docs/results/hdfs/sft-same-budget), grounded with forcing, against it.
.venv/bin/logrl eval --config configs/hdfs.yaml --set train.output_dir=runs/hdfs-sft255 \
    --adapter runs/hdfs-sft255/adapters/v0 "${force[@]}" --out docs/results/hdfs/grounded/forced/sft-same-budget
{
    .venv/bin/python -m evaluation.paired $g/forced/sft-same-budget:adapter/grounded $g/forced:adapter/grounded
    .venv/bin/python -m evaluation.paired docs/results/hdfs/sft-same-budget:adapter/reason \
        $g/forced/sft-same-budget:adapter/grounded
} | tee docs/results/hdfs/grounded/forced/paired-same-budget.txt
