# GPU image for logrl on a Ray cluster (KubeRay RayJob / RayService). Not buildable on the CPU dev boxes.
FROM rayproject/ray:2.60.0-py311-cu128
WORKDIR /app
COPY --chown=ray:users pyproject.toml README.md mlflow-requirements.txt ./
COPY --chown=ray:users cluster ./cluster
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users rl_actors ./rl_actors
COPY --chown=ray:users reward_workers ./reward_workers
COPY --chown=ray:users serving ./serving
COPY --chown=ray:users configs ./configs
# [gpu] installs the CUDA vllm, which pins the torch it was built against. A regular (non-editable) install:
# the image runs the installed packages; configs/ stays in /app, the working directory.
RUN pip install --no-cache-dir '.[gpu]' && pip install --no-cache-dir -r mlflow-requirements.txt
ENV RAY_USAGE_STATS_ENABLED=0 \
    TORCH_EXTENSIONS_DIR=/home/ray/.cache/torch_extensions
CMD ["logrl", "--help"]
