"""The run's stages, each skipped when its output already exists: data, tiny model, SFT, GRPO, serve."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cluster.config import LogrlConfig
from cluster.environment import init_ray


def ensure_data(cfg: LogrlConfig, force: bool = False) -> dict:
    """Prompts, miner state and dead letters under data.output_dir (built with Ray Data if missing)."""
    from pipelines.build_dataset import SUMMARY_FILE, build_prompt_dataset

    summary_path = Path(cfg.data.output_dir) / SUMMARY_FILE
    if summary_path.exists() and not force:
        return json.loads(summary_path.read_text())
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    summary = build_prompt_dataset(cfg.data)
    print(f"[data] {json.dumps(summary)}", flush=True)
    return summary


def ensure_model(cfg: LogrlConfig, force: bool = False) -> str:
    """The base model path; builds the tiny local model when `model.build_tiny` and it is missing."""
    path = Path(cfg.model.path)
    if not cfg.model.build_tiny or (path.exists() and not force):
        if path.exists():
            print(f"[model] using {path}", flush=True)
        return cfg.model.path
    from rl_actors.tiny_model import build_tiny_model

    summary = ensure_data(cfg)
    build_tiny_model(
        [summary["paths"]["train"], summary["paths"]["test"]], path, cfg.tiny_model, cfg.model.max_model_len
    )
    print(f"[model] tiny model written to {path}", flush=True)
    return cfg.model.path


def train_rows(cfg: LogrlConfig) -> list[dict]:
    from pipelines.build_dataset import load_examples

    return load_examples(ensure_data(cfg)["paths"]["train"])


def run_sft_stage(cfg: LogrlConfig) -> Path:
    """LoRA SFT warm start; returns the adapter folder (version 0)."""
    from rl_actors.trainer import run_sft

    ensure_model(cfg)
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    path = run_sft(cfg, train_rows(cfg))
    print(f"[sft] adapter {path} ({time.perf_counter() - started:.0f}s)", flush=True)
    return path


def run_train_stage(cfg: LogrlConfig) -> dict:
    """GRPO from the SFT adapter (running SFT first when it is configured and missing)."""
    from rl_actors.trainer import GRPOTrainer, adapters_dir

    ensure_model(cfg)
    init_adapter = cfg.train.init_adapter
    if init_adapter is None and cfg.sft.steps > 0:
        sft_dir = adapters_dir(cfg.train) / "v0"
        if (sft_dir / "adapter_config.json").exists():
            print(f"[sft] reusing the SFT adapter {sft_dir} (delete it to redo SFT)", flush=True)
            init_adapter = str(sft_dir)
        else:
            init_adapter = str(run_sft_stage(cfg))
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    trainer = GRPOTrainer(cfg, train_rows(cfg), init_adapter)
    try:
        result = trainer.fit()
    finally:
        trainer.shutdown()
    print(f"[train] {cfg.train.steps} GRPO steps in {time.perf_counter() - started:.0f}s", flush=True)
    print(f"[train] adapter: {result['adapter']['path']}", flush=True)
    print(
        f"[train] metrics: {Path(result['log']) / 'metrics.jsonl'} (TensorBoard: {Path(result['log']) / 'tensorboard'})"
    )
    return result


def start_serving(cfg: LogrlConfig, adapter: str | None = None):
    """Deploy the detector app for the given, configured or latest trained adapter; returns the running handle."""
    from serving.launch import run_detector

    ensure_data(cfg)  # the miner state serving loads is written with the data
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    return run_detector(*detector_args(cfg, adapter))


def detector_args(cfg: LogrlConfig, adapter: str | None = None) -> tuple:
    """(serve_cfg, model, adapter, miner_state, format, max_prompt_lines) for the serving builders."""
    from pipelines.build_dataset import MINER_STATE_FILE
    from rl_actors.trainer import latest_adapter

    adapter = adapter or cfg.serve.adapter or (latest_adapter(cfg.train.output_dir) or {}).get("path")
    if not adapter:
        raise FileNotFoundError(f"no adapter to serve: set serve.adapter or train into {cfg.train.output_dir} first")
    serve_cfg = cfg.serve.model_copy(update={"max_model_len": cfg.serve.max_model_len or cfg.model.max_model_len})
    model = cfg.serve.model or cfg.model.path
    miner_state = str(Path(cfg.data.output_dir) / MINER_STATE_FILE)  # the miner training used
    return serve_cfg, model, adapter, miner_state, cfg.data.format, cfg.data.max_prompt_lines
