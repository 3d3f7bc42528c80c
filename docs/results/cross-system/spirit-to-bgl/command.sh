#!/bin/bash
# Spirit -> BGL cross-system (issue 17): same recipe as make cross-system-experiment's second pair, eval on a
# stratified 400-template sample of BGL in fast mode (as BGL -> Spirit was run).
set -e
cd "$(dirname "$0")/../../../.."
source docs/results/cross-system/env.sh
args=$(recipe $S spirit)
date
.venv/bin/logrl sft $args
date
.venv/bin/logrl eval $args --protocol cross-system --data templates:$B --no-adapter --arm sft-domain-teacher=runs/cross-spirit/adapters/v0 --mode fast --limit 400 --out runs/cross-spirit/eval
date
