"""Typed settings for the Ray Serve detector app (the `serve` section of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config import StrictModel


class AutoscalingConfig(StrictModel):
    """Ray Serve autoscaling of detector replicas (each replica is one vLLM engine)."""

    min_replicas: int = Field(1, ge=1, description="Replicas kept even when idle.")
    max_replicas: int = Field(2, ge=1, description="Replicas at most; each needs its CPUs/GPUs free.")
    target_ongoing_requests: float = Field(
        8, gt=0, description="Ongoing requests per replica Serve aims for before adding one."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) < min_replicas ({self.min_replicas})")
        return self


class OpenAILimits(StrictModel):
    """What one /v1 generation request may ask of the engine, how many run at once, and each key's token budget."""

    max_n: int = Field(
        1,
        ge=1,
        description="Largest `n` and `best_of` (completions per prompt); more is a 400. On CPU a decode step costs "
        "about in proportion to the sequences in it, so every concurrent /v1 sequence slows /detect.",
    )
    max_tokens: int = Field(
        512,
        ge=1,
        description="Largest `max_tokens` / `max_completion_tokens`; a request naming none gets this many.",
    )
    max_prompts: int = Field(4, ge=1, description="/v1/completions: most prompts in one request's `prompt` list.")
    allow_ignore_eos: bool = Field(False, description="Whether `ignore_eos: true` (generate to the limit) is allowed.")
    max_logprobs: int = Field(
        5, ge=0, description="Largest `top_logprobs`, `logprobs` and `prompt_logprobs` (and `logprob_token_ids` count)."
    )
    max_ongoing_requests: int = Field(
        1,
        ge=1,
        description="/v1 generations one replica runs at once; more wait in its queue. /detect has its own slots "
        "(serve.max_ongoing_requests) and the engine schedules it ahead of /v1 work.",
    )
    tokens_per_minute_per_key: int | None = Field(
        60_000,
        ge=1,
        description="Tokens each API key's /v1 requests may generate per minute (charged at admission as "
        "completions x max_tokens; a minute's worth may be spent at once); over it, 429 with Retry-After. Each "
        "replica holds an equal share. None: no budget.",
    )


class ServeConfig(StrictModel):
    """Which base model and adapter to host, and how."""

    model: str | None = Field(None, description="Base model path; defaults to model.path.")
    adapter: str | None = Field(None, description="PEFT adapter folder; defaults to the last trained one.")
    adapter_name: str = Field("logrl-detector", description="Model name clients use for the adapter.")
    host: str = Field("127.0.0.1", description="HTTP host for Ray Serve.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port for Ray Serve.")
    num_replicas: int = Field(1, ge=1, description="Serve replicas, each with its own vLLM engine (fixed count).")
    autoscaling: AutoscalingConfig | None = Field(
        None, description="Scale replicas with load instead of num_replicas (min/max replicas, target per replica)."
    )
    num_gpus_per_replica: float = Field(0, ge=0, description="GPUs per replica (0 on CPU).")
    max_new_tokens: int = Field(128, ge=4, description="Completion limit for /detect in reasoning mode.")
    fast_max_new_tokens: int | None = Field(
        None,
        ge=2,
        description="Completion limit for /detect in fast mode; None: measured on the model's tokenizer (the "
        "longest verdict plus `</answer>` after the `<answer>` prefill).",
    )
    max_model_len: int | None = Field(None, ge=64, description="vLLM max_model_len; default: model.max_model_len.")
    max_loras: int = Field(
        1,
        ge=1,
        description="LoRA slots per engine batch. 1 serves one adapter at a time; during an adapter switch the new "
        "version's requests wait for the old one's batch to drain (2 lets both run, at a cost per step).",
    )
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
        "pipelines.prompts.render.MAX_LINE_CHARS characters of a template (cut with '…'), so a long line never "
        "overflows the context; this limit only bounds the work per line.",
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
        16, ge=1, description="/detect requests one replica works on at once; more wait in its queue."
    )
    max_queued_requests: int = Field(
        64, ge=0, description="Requests one replica lets wait; beyond that it answers 429 with Retry-After."
    )
    openai_limits: OpenAILimits = Field(
        default_factory=OpenAILimits, description="Caps and per-key token budget for /v1/* generation requests."
    )
    cascade: bool = Field(
        False,
        description="/detect runs the classical first stage (template counts of the train split, "
        "classical_stage.json beside the miner) and asks the model only about suspicious windows; a request's "
        "`cascade` overrides it. Off (the default), or without the file, every window goes to the model.",
    )
    grounded: bool = Field(
        False,
        description="/detect decodes reasoning mode under the prompt's evidence grammar "
        "(contract/evidence_grammar.py): every quote in the rationale is text of the line it names, and the "
        "model still picks the lines and the verdict. A request's `grounded` overrides it.",
    )
    force_verdict: bool = Field(
        False,
        description="Budget forcing on /detect: a reasoning (or grounded) completion its token budget cuts before "
        "the answer is closed where it stopped and asked for the verdict, as fast mode asks (`forced` in the "
        "response says so); the prompt budget keeps room for that second pass.",
    )
    cascade_decides_known_anomalies: bool = Field(
        False,
        description="The first stage also calls a window anomalous itself when a template of it occurred only on "
        "anomaly lines in training (else the model decides such windows).",
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
    adapters_dir: str | None = Field(
        None,
        description="Folder whose adapter versions POST /admin/adapters may switch to; default: the served "
        "adapter's parent folder (a training run's adapters/).",
    )
    adapter_poll_s: float = Field(
        1.0, gt=0, description="How often each replica checks for an adapter switch made on another replica."
    )
    admin_api_keys: list[str] = Field(
        default_factory=list,
        description="Keys (or 'sha256:<hex>' digests) for /admin/*; also $LOGRL_ADMIN_API_KEYS. With auth enabled "
        "and none configured, /admin/* answers 403. With auth disabled, /admin/* is open (local use only).",
    )
    ready_timeout_s: float = Field(600, gt=0, description="How long run_detector waits for the app to be healthy.")

    @property
    def initial_replicas(self) -> int:
        """Replicas placed at start: autoscaling's minimum, or the fixed count."""
        return self.autoscaling.min_replicas if self.autoscaling else self.num_replicas
