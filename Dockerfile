# GPU image for logrl on a Ray cluster (KubeRay RayJob / RayService). Not buildable on the CPU dev boxes.
# CUDA: the [gpu] extra resolves vllm 0.29.0 -> torch 2.13.0, built for CUDA 13.0 (its wheels bring the CUDA 13.0
# runtime; `make gpu-deps-check`, docs/results/gpu-deps/summary.json), so the base image is Ray's CUDA 13.0 one: no
# CUDA 12 toolkit beside it for runtime compiles (flashinfer, triton) to pick up. Nodes need an NVIDIA driver of
# the R580 branch or newer (CUDA 13.0's minimum). Another CUDA 13.0 base with Python 3.11 and Ray 2.60 works too:
# docker build --build-arg BASE_IMAGE=... .
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-cu130
FROM ${BASE_IMAGE}
WORKDIR /app
COPY --chown=ray:users pyproject.toml README.md mlflow-requirements.txt ./
# Every package the `logrl` CLI imports (pyproject's packages.find list; tests/cluster/test_packaging.py builds a
# wheel from exactly these folders and imports the CLI, serving and evaluation from a clean venv).
COPY --chown=ray:users cluster ./cluster
COPY --chown=ray:users contract ./contract
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users rl_actors ./rl_actors
COPY --chown=ray:users reward_workers ./reward_workers
COPY --chown=ray:users serving ./serving
COPY --chown=ray:users evaluation ./evaluation
COPY --chown=ray:users configs ./configs
# [gpu] installs the CUDA vllm, which pins the torch it was built against. A regular (non-editable) install:
# the image runs the installed packages; configs/ stays in /app, the working directory.
RUN pip install --no-cache-dir '.[gpu]' && pip install --no-cache-dir -r mlflow-requirements.txt
# RAY_process_group_cleanup_enabled: the raylet kills a dead worker's whole process group, so a SIGKILLed rollout
# actor never leaves its vLLM engine-core process holding GPU memory (Ray 2.60's default; set so it stays on).
ENV RAY_USAGE_STATS_ENABLED=0 \
    RAY_process_group_cleanup_enabled=1 \
    TORCH_EXTENSIONS_DIR=/home/ray/.cache/torch_extensions
CMD ["logrl", "--help"]
