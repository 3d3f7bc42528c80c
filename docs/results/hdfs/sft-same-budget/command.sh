#!/usr/bin/env bash
# SFT only, for the wall time `make hdfs-experiment` spends on SFT (60 steps) + GRPO (40 steps): 255 SFT steps from
# the same tiny base on the same split, then the same eval; compared with the SFT+GRPO arm by the paired bootstrap.
# Run after `make hdfs-experiment` (it reuses runs/hdfs/tiny-model and runs/hdfs/data).
set -euo pipefail
.venv/bin/logrl sft --config configs/hdfs.yaml --set sft.steps=255 --set train.output_dir=runs/hdfs-sft255
.venv/bin/logrl eval --config configs/hdfs.yaml --set train.output_dir=runs/hdfs-sft255 \
    --adapter runs/hdfs-sft255/adapters/v0 --mode both --out docs/results/hdfs/sft-same-budget
for mode in reason fast; do
    .venv/bin/python -m evaluation.paired docs/results/hdfs/sft-same-budget:adapter/$mode docs/results/hdfs:sft+grpo/$mode
done
