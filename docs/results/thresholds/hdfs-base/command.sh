#!/bin/sh
# HDFS's pretrained tiny base (the `base` arm of make hdfs-experiment, built again: 400 pretraining steps) in fast
# mode on the 1,840 test blocks, thresholds chosen on the 736-block validation slice; the report keeps
# validation.jsonl for `python -m evaluation.threshold_rules` (../command.sh). Bundled data only.
A="--config configs/hdfs.yaml --set train.output_dir=runs/hdfs-base --set data.output_dir=runs/hdfs-base/data --set model.path=runs/hdfs-base/tiny-model"
PYTHONUNBUFFERED=1 .venv/bin/logrl build-tiny-model $A
PYTHONUNBUFFERED=1 .venv/bin/logrl eval $A --no-adapter --mode fast --out docs/results/thresholds/hdfs-base
