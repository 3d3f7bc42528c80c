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
    fast_max_new_tokens: int | None = Field(
        None,
        ge=2,
        description="Completion limit for /detect in fast mode; None: measured on the model's tokenizer (the "
        "longest verdict plus `</answer>` after the `<answer>` prefill).",
    )
    max_model_len: int | None = Field(None, ge=64, description="vLLM max_model_len; default: model.max_model_len.")
    max_lora_rank: int = Field(16, ge=1, description="vLLM max_lora_rank; must be >= the adapter's rank r.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("float32", description="vLLM dtype.")
    enforce_eager: bool = Field(True, description="Skip CUDA graphs (required on CPU; faster start on GPU).")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM GPU memory share (GPU only).")
    num_cpus_per_replica: float = Field(1, gt=0, description="CPUs reserved per replica.")
    max_request_lines: int = Field(
        2000,
        ge=1,
        description="/detect rejects requests with more raw lines (422). A bound on parsing and template matching, "
        "not on what the model sees: the prompt is fitted to max_model_len (severe and rare templates first) and "
        "every line it cannot show is listed in the response's `omitted_lines`, with `truncated: true`.",
    )
    max_line_chars: int = Field(
        8192,
        ge=16,
        description="/detect rejects a raw line longer than this (422). The prompt shows at most "
        "pipelines.prompts.MAX_LINE_CHARS characters of a template (cut with '…'), so a long line never overflows "
        "the context; this limit only bounds the work per line.",
    )
    max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest request body on /detect and /v1/* (413): checked on Content-Length before reading and "
        "again while the body streams in.",
    )
    request_timeout_s: float = Field(
        120, gt=0, description="/detect answers 504 after this long (queueing, matching and generation together)."
    )
    max_ongoing_requests: int = Field(
        16, ge=1, description="Requests one replica works on at once; more wait in its queue."
    )
    max_queued_requests: int = Field(
        64, ge=0, description="Requests one replica lets wait; beyond that it answers 429 with Retry-After."
    )
    max_response_templates: int = Field(100, ge=1, description="At most this many templates in a /detect response.")
    max_template_chars: int = Field(300, ge=16, description="Each template in a /detect response is cut to this.")
    auth: Literal["enabled", "disabled"] = Field(
        "enabled",
        description="API keys on /detect and /v1/* ('Authorization: Bearer KEY'); 'disabled' only for local use.",
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="Accepted API keys, best as 'sha256:<hex digest>' so the config holds no secret; plain keys are "
        "hashed on load. Also read: $LOGRL_API_KEYS (comma-separated) and api_keys_file.",
    )
    api_keys_file: str | None = Field(
        None, description="File with one API key or 'sha256:<hex>' digest per line ('#' comments allowed)."
    )
    default_model: Literal["adapter", "reject"] = Field(
        "adapter",
        description="A /v1 request naming no model: 'adapter' answers with the adapter, 'reject' answers 400.",
    )
    ready_timeout_s: float = Field(600, gt=0, description="How long run_detector waits for the app to be healthy.")
