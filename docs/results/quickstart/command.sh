#!/bin/sh
# The quickstart as shipped (configs/quickstart.yaml): a fresh tiny model, SFT, GRPO, eval, Serve, one /detect query.
rm -rf runs/quickstart && make quickstart
cp runs/quickstart/eval/report.md runs/quickstart/eval/metrics.json runs/quickstart/eval/predictions.jsonl docs/results/quickstart/
# The 1,000-step arm: the same with twice the pretraining, in its own folders.
.venv/bin/logrl quickstart --set tiny_model.pretrain_steps=1000 --set data.output_dir=runs/qs1000/data \
  --set model.path=runs/qs1000/tiny-model --set train.output_dir=runs/qs1000
# The 200-step arm on the rows as stored: the quickstart of commit 07544cf, or today with
#   --set tiny_model.pretrain_steps=200 --set tiny_model.pretrain_views=false (and its own folders, as above).
for m in reason fast; do
  .venv/bin/python -m evaluation.paired docs/results/quickstart/before-200-steps:adapter/$m docs/results/quickstart:adapter/$m
done
