"""Typed settings for the Ray Serve detector app (the `serve` section of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.config import StrictModel


class ServeConfig(StrictModel):
    """Which base model and adapter to host, and how."""

    model: str | None = Field(None, description="Base model path; defaults to model.path.")
    adapter: str | None = Field(None, description="PEFT adapter folder; defaults to the last trained one.")
    adapter_name: str = Field("logrl-detector", description="Model name clients use for the adapter.")
    host: str = Field("127.0.0.1", description="HTTP host for Ray Serve.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port for Ray Serve.")
    num_replicas: int = Field(1, ge=1, description="Serve replicas, each with its own vLLM engine.")
    num_gpus_per_replica: float = Field(0, ge=0, description="GPUs per replica (0 on CPU).")
    max_new_tokens: int = Field(128, ge=4, description="Completion limit for /detect in reasoning mode.")
    fast_max_new_tokens: int = Field(8, ge=2, description="Completion limit for /detect in fast mode.")
    max_model_len: int | None = Field(None, ge=64, description="vLLM max_model_len; default: model.max_model_len.")
    max_lora_rank: int = Field(16, ge=1, description="vLLM max_lora_rank; must be >= the adapter's rank r.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("float32", description="vLLM dtype.")
    enforce_eager: bool = Field(True, description="Skip CUDA graphs (required on CPU; faster start on GPU).")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM GPU memory share (GPU only).")
    num_cpus_per_replica: float = Field(1, gt=0, description="CPUs reserved per replica.")
    max_request_lines: int = Field(2000, ge=1, description="/detect rejects requests with more raw lines (422).")
    max_line_chars: int = Field(8192, ge=16, description="/detect rejects a raw line longer than this (422).")
    ready_timeout_s: float = Field(600, gt=0, description="How long run_detector waits for the app to be healthy.")
