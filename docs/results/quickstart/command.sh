#!/bin/sh
# The quickstart as shipped (configs/quickstart.yaml): a fresh tiny model, SFT, GRPO, eval, Serve, one /detect query.
rm -rf runs/quickstart && make quickstart 2>&1 | tee runs/quickstart.log
cp runs/quickstart/eval/report.md runs/quickstart/eval/metrics.json runs/quickstart/eval/predictions.jsonl docs/results/quickstart/
# The 1,000-step arm: the same with twice the pretraining, in its own folders.
.venv/bin/logrl quickstart --set tiny_model.pretrain_steps=1000 --set data.output_dir=runs/qs1000/data \
  --set model.path=runs/qs1000/tiny-model --set train.output_dir=runs/qs1000
# The 200-step arm on the rows as stored: the quickstart of commit 07544cf, or today with
#   --set tiny_model.pretrain_steps=200 --set tiny_model.pretrain_views=false (and its own folders, as above).
# Grounded against free reasoning, same model and run (the quickstart evaluates --mode all since 2026-12-03):
.venv/bin/python -m evaluation.paired docs/results/quickstart:adapter/reason docs/results/quickstart:adapter/grounded \
  > docs/results/quickstart/paired-grounded.txt
grep "/detect on held-out" runs/quickstart.log > docs/results/quickstart/detect-demo.txt
for m in reason fast; do
  .venv/bin/python -m evaluation.paired docs/results/quickstart/before-200-steps:adapter/$m docs/results/quickstart:adapter/$m
done
