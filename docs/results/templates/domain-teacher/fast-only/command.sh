#!/bin/sh
# The domain-teacher SFT of ../ (150 steps, same split, same teacher, anomalous_share 0.2) with every example
# answer-first (sft.fast_mode_fraction 1.0, shipped 0.3): the fast-mode detector trained only on the mode it is
# scored in. BGL_CSV, SPIRIT_CSV: your LogPrompt template CSVs (not bundled).
set -e
A="--config configs/templates-smollm2.yaml --set data.paths=[${BGL_CSV:?},${SPIRIT_CSV:?}] --set data.teacher.kind=domain"
A="$A --set sft.fast_mode_fraction=1.0 --set train.output_dir=runs/tpl-domain-fast1 --set data.output_dir=runs/tpl-domain/data"
[ -f runs/tpl-domain-fast1/adapters/v0/adapter_model.safetensors ] || PYTHONUNBUFFERED=1 .venv/bin/logrl sft $A
PYTHONUNBUFFERED=1 .venv/bin/logrl eval $A --no-adapter --arm sft-fast-only=runs/tpl-domain-fast1/adapters/v0 \
  --mode fast --out docs/results/templates/domain-teacher/fast-only
.venv/bin/python -m evaluation.paired docs/results/templates/domain-teacher:sft-domain-teacher/fast \
  docs/results/templates/domain-teacher/fast-only:sft-fast-only/fast | tee docs/results/templates/domain-teacher/fast-only/paired.txt
