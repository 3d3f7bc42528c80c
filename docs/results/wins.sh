#!/bin/sh
# wins.md ("where the LLM wins and where it loses") from the committed headline reports; run from the repository
# root (the reanalysis scripts call it after rewriting the reports).
exec .venv/bin/python -m evaluation.wins \
  "template task (BGL+Spirit, seeded 80/20)=docs/results/templates" \
  "template task, domain teacher=docs/results/templates/domain-teacher" \
  "cross-system BGL -> Spirit (400 sampled)=docs/results/cross-system/bgl-to-spirit" \
  "cross-system Spirit -> BGL (400 sampled)=docs/results/cross-system/spirit-to-bgl" \
  "HDFS (LogLead, chronological 80/20)=docs/results/hdfs" \
  "HDFS, SFT for the same wall time=docs/results/hdfs/sft-same-budget" --out docs/results/wins.md
