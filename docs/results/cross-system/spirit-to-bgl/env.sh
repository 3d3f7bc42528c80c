# Sourced, from the repository root, by the Spirit -> BGL command.sh scripts: the CPU run environment, the LogPrompt
# template lists from your own path (never bundled), and the recipe (SFT on Spirit only, domain teacher, 60 steps).
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 \
  VLLM_CPU_OMP_THREADS_BIND=nobind VLLM_CACHE_ROOT=$PWD/.cache/vllm TORCH_EXTENSIONS_DIR=$PWD/.cache/torch_extensions \
  TMPDIR=$PWD/.cache/tmp PYTHONUNBUFFERED=1
mkdir -p $TMPDIR
S=${SPIRIT_CSV:?set SPIRIT_CSV}
B=${BGL_CSV:?set BGL_CSV}
args="--config configs/templates-smollm2.yaml --set data.paths=[$S] --set data.teacher.kind=domain --set data.train_fraction=0.9 --set sft.steps=60 --set train.output_dir=runs/cross-spirit --set data.output_dir=runs/cross-spirit/data"
