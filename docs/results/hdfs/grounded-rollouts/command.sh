#!/usr/bin/env bash
# GRPO with grounded rollouts (rollout.grounded): the same 40 steps as `make hdfs-experiment`, from the same SFT
# adapter (runs/hdfs/adapters/v0), each group sampled under its training view's evidence grammar; then the three
# modes with budget forcing, and paired bootstraps against the free-rollout SFT+GRPO and the SFT arms.
# Run after `make hdfs-experiment`, docs/results/hdfs/grounded/forced/command.sh and sft-same-budget/command.sh.
set -euo pipefail
.venv/bin/logrl train --config configs/hdfs.yaml --set train.init_adapter=runs/hdfs/adapters/v0 \
    --set train.output_dir=runs/hdfs-grounded-grpo --set rollout.grounded=true
.venv/bin/logrl eval --config configs/hdfs.yaml --set train.output_dir=runs/hdfs-grounded-grpo \
    --adapter runs/hdfs-grounded-grpo/adapters/v40 --mode all --set eval.force_verdict=true \
    --out docs/results/hdfs/grounded-rollouts
g=docs/results/hdfs
{
    .venv/bin/python -m evaluation.paired $g/grounded/forced:adapter/grounded $g/grounded-rollouts:adapter/grounded
    .venv/bin/python -m evaluation.paired $g/grounded/forced:sft/grounded $g/grounded-rollouts:adapter/grounded
    .venv/bin/python -m evaluation.paired $g/grounded/forced/sft-same-budget:adapter/grounded \
        $g/grounded-rollouts:adapter/grounded
    .venv/bin/python -m evaluation.paired $g:sft+grpo/reason $g/grounded-rollouts:adapter/reason
} | tee docs/results/hdfs/grounded-rollouts/paired.txt
