#!/bin/sh
# hdfs-base/command.sh with the validation slice drawn across the training period (data.validation_draw: spread, a
# seeded 10% of each label) instead of its latest 736 blocks: the data, the tiny base (400 pretraining steps on the
# new train split) and the fast-mode eval are built again. Bundled data only.
A="--config configs/hdfs.yaml --set data.validation_draw=spread --set train.output_dir=runs/hdfs-spread --set data.output_dir=runs/hdfs-spread/data --set model.path=runs/hdfs-spread/tiny-model"
PYTHONUNBUFFERED=1 .venv/bin/logrl build-tiny-model $A
PYTHONUNBUFFERED=1 .venv/bin/logrl eval $A --no-adapter --mode fast --out docs/results/thresholds/hdfs-spread
