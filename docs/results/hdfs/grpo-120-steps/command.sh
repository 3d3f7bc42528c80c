#!/usr/bin/env bash
# 80 more GRPO steps from the SFT+GRPO adapter of `make hdfs-experiment` (v40): 120 GRPO steps in all, same config,
# then the reasoning-mode eval and the paired bootstraps against v40 and against the same-wall-time SFT arm.
set -euo pipefail
.venv/bin/logrl train --config configs/hdfs.yaml --set train.steps=80 --set train.output_dir=runs/hdfs-grpo200 \
    --set train.init_adapter=runs/hdfs/adapters/v40 --set train.checkpoint_every=40
.venv/bin/logrl eval --config configs/hdfs.yaml --set train.output_dir=runs/hdfs-grpo200 \
    --adapter runs/hdfs-grpo200/adapters/v80 --mode reason --out docs/results/hdfs/grpo-120-steps
.venv/bin/python -m evaluation.paired docs/results/hdfs:sft+grpo/reason docs/results/hdfs/grpo-120-steps:adapter/reason
.venv/bin/python -m evaluation.paired docs/results/hdfs/sft-same-budget:adapter/reason docs/results/hdfs/grpo-120-steps:adapter/reason
