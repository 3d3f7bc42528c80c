# Sourced, from the repository root, by the cross-system command.sh scripts: the CPU run environment, the LogPrompt
# template lists from your own path (never bundled), and the recipe of `make cross-system-experiment`.
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 \
  VLLM_CPU_OMP_THREADS_BIND=nobind VLLM_CACHE_ROOT=$PWD/.cache/vllm TORCH_EXTENSIONS_DIR=$PWD/.cache/torch_extensions \
  TMPDIR=$PWD/.cache/tmp PYTHONUNBUFFERED=1
mkdir -p $TMPDIR
S=${SPIRIT_CSV:?set SPIRIT_CSV}
B=${BGL_CSV:?set BGL_CSV}

# recipe SOURCE_CSV NAME: the logrl arguments of runs/cross-NAME: SmolLM2, SFT on the source system's templates
# only (domain teacher, 90% of them, 60 steps).
recipe() {
  echo "--config configs/templates-smollm2.yaml --set data.paths=[$1] --set data.teacher.kind=domain" \
    "--set data.train_fraction=0.9 --set sft.steps=60 --set train.output_dir=runs/cross-$2" \
    "--set data.output_dir=runs/cross-$2/data"
}
