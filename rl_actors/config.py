"""Typed settings for the model, SFT, rollout, learner and GRPO algorithm sections of the YAML config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config import PlacementStrategy, StrictModel

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # max_lora_rank values vLLM accepts (0.29 and 0.32)


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of rank `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"model.lora_rank: {rank} is above vLLM's largest LoRA rank, {VLLM_LORA_RANKS[-1]}")


def is_whole(value: float) -> bool:
    return float(value).is_integer()


class ModelConfig(StrictModel):
    """The base model and the LoRA adapter trained on top of it."""

    path: str = Field(description="HF model id or local folder (the quickstart builds a tiny one).")
    build_tiny: bool = Field(False, description="Build a tiny local model at `path` (see tiny_model) if it is missing.")
    lora_rank: int = Field(
        16,
        ge=1,
        le=VLLM_LORA_RANKS[-1],
        description="LoRA rank r. vLLM's engines reserve the next rank it supports (8, 16, 32, 64, 128, 256, 320, "
        "512): any r up to 512 works.",
    )
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        None,
        description="Module names that get LoRA weights; None: every Linear layer of the architecture except the "
        "output head (Llama: q/k/v/o_proj, gate/up/down_proj).",
    )
    max_model_len: int = Field(1024, ge=64, description="Prompt + completion token limit.")


class TinyModelConfig(StrictModel):
    """Shape of the locally built tiny Llama used by the quickstart and tests."""

    vocab_size: int = Field(4096, ge=300, description="BPE vocabulary size.")
    hidden_size: int = Field(128, ge=32, description="Hidden width; head_dim = hidden_size / num_heads.")
    num_layers: int = Field(2, ge=1, description="Decoder layers.")
    num_heads: int = Field(2, ge=1, description="Attention heads.")
    intermediate_size: int = Field(256, ge=32, description="MLP width.")
    pretrain_steps: int = Field(0, ge=0, description="Full-parameter LM steps on train-split chat text before saving.")
    pretrain_lr: float = Field(3e-3, gt=0, description="Peak learning rate of that pretraining (one-cycle schedule).")
    pretrain_batch_size: int = Field(8, ge=1, description="Sequences per pretraining step.")
    pretrain_views: bool = Field(
        True,
        description="Pretrain on a fresh perturbed view per draw (`train.augment`: line numbers shifted, groups "
        "reordered), as SFT and GRPO see them; false: every row as stored (the pretraining of the HDFS and "
        "quickstart results before 2026-12-03).",
    )
    seed: int = Field(0, description="Initialisation seed.")


class SFTConfig(StrictModel):
    """The LoRA warm start on teacher rationales, run through the same DeepSpeed learner."""

    steps: int = Field(60, ge=0, description="Optimizer steps (0 skips SFT).")
    batch_size: int = Field(8, ge=1, description="Sequences per step.")
    learning_rate: float = Field(5e-3, gt=0, description="AdamW learning rate during SFT.")
    fast_mode_fraction: float = Field(0.25, ge=0, le=1, description="Share of answer-first examples.")
    anomalous_share: float | None = Field(
        None, ge=0, le=1, description="Share of anomalous sessions per batch (None: as they come in the data)."
    )


class ActorResources(StrictModel):
    """How many actors of a role run, what each one reserves, and how they spread over nodes."""

    num_workers: int = Field(1, ge=1, description="Actors of this role (rollout engines, learner ranks).")
    num_gpus_per_worker: float = Field(0, ge=0, description="GPUs per actor (0 on CPU).")
    num_cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved per actor.")
    threads: int | None = Field(
        None,
        ge=1,
        description="torch/OpenMP threads in each actor; None keeps Ray's default (one per reserved CPU). On a "
        "CPU box, where the roles work one after another, give each the node's cores.",
    )
    placement_strategy: PlacementStrategy = Field(
        "PACK",
        description="Ray placement-group strategy of this role's actors: PACK (few nodes), SPREAD (many nodes), "
        "STRICT_PACK (one node), STRICT_SPREAD (one actor per node).",
    )


class RolloutConfig(ActorResources):
    """vLLM rollout actors (each owning one engine) and how they sample."""

    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="vLLM tensor parallelism inside one actor: its GPUs (num_gpus_per_worker) run vLLM's worker "
        "processes. GPUs only.",
    )
    group_size: int = Field(4, ge=2, description="G: completions sampled per prompt.")
    max_new_tokens: int = Field(96, ge=4, description="Completion token limit.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (logprobs are at this temperature).")
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling; only 1.0: the learner cannot reproduce truncated logprobs."
    )
    gpu_memory_utilization: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Share of its GPU's memory vLLM takes (weights, activations, KV cache). On a shared GPU (a "
        "fractional num_gpus_per_worker, e.g. colocated with the learner) at most that fraction: vLLM checks the "
        "share is free when it starts, after the learner has loaded.",
    )
    sleep_during_update: bool | None = Field(
        None,
        description="vLLM sleep mode (level 1) while the learner works: after each rollout the engine offloads its "
        "weights to CPU memory and drops its KV cache, and wakes before the adapter sync. None: on when colocated "
        "with the learner on GPUs. CUDA only; not with train.overlap_rollout (the engine samples during the update).",
    )
    grounded: bool = Field(
        False,
        description="Sample each group under its prompt's evidence grammar (contract/evidence_grammar.py, grounded "
        "mode's): every quote a rollout holds is text of the line it names. The samples then come from the "
        "grammar-masked distribution, not the policy's: the ratio needs algo.old_logprobs: learner and no tis_cap.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("float32", description="vLLM dtype.")
    enforce_eager: bool = Field(True, description="Skip CUDA graphs (required on CPU).")
    colocate_with_learner: bool = Field(
        False,
        description="Rollout engine i runs in learner rank i's placement bundle: same node and, with GPUs, the same "
        "GPU, shared by memory fraction (the two roles' num_gpus_per_worker add up to at most 1, e.g. 0.5 each, and "
        "gpu_memory_utilization leaves the learner its share). Needs as many rollout workers as learner ranks; "
        "the learner's placement_strategy places both. False: each role has its own bundles (and GPUs).",
    )

    @field_validator("top_p")
    @classmethod
    def _learner_can_match(cls, value: float) -> float:
        # The learner divides logits by the temperature and so matches vLLM's processed logprobs; it does not
        # renormalise over a nucleus, so top_p < 1 would make every importance ratio silently wrong.
        if value != 1.0:
            raise ValueError("top_p < 1 is refused: the learner cannot reproduce nucleus-truncated logprobs")
        return value

    @model_validator(mode="after")
    def _tensor_parallel_gpus(self) -> RolloutConfig:
        tp, gpus = self.tensor_parallel_size, self.num_gpus_per_worker
        if tp > 1 and gpus != tp:
            raise ValueError(
                f"rollout.tensor_parallel_size: {tp} runs on the actor's own GPUs: set num_gpus_per_worker: {tp} "
                f"(got {gpus:g}; tensor parallelism is GPU-only)"
            )
        if gpus > 1 and tp == 1:
            raise ValueError(
                f"rollout.num_gpus_per_worker: {gpus:g} GPUs for one engine with tensor_parallel_size 1, which uses "
                f"one: set tensor_parallel_size: {gpus:g}, or num_gpus_per_worker: 1"
            )
        if 0 < gpus < 1 and self.gpu_memory_utilization > gpus:
            raise ValueError(
                f"rollout.gpu_memory_utilization: {self.gpu_memory_utilization:g} of the GPU's memory is more than "
                f"the engine's share of that GPU, rollout.num_gpus_per_worker {gpus:g}: whatever else holds the GPU "
                f"(the learner, another engine) keeps the rest, so set gpu_memory_utilization to at most {gpus:g}"
            )
        if self.sleep_during_update and gpus == 0:
            raise ValueError("rollout.sleep_during_update: vLLM's sleep mode needs GPUs (num_gpus_per_worker > 0)")
        return self

    @property
    def sleeps(self) -> bool:
        """Whether the engines sleep while the learner works (see `sleep_during_update`)."""
        if self.sleep_during_update is None:
            return self.colocate_with_learner and self.num_gpus_per_worker > 0
        return self.sleep_during_update


class LearnerConfig(ActorResources):
    """DeepSpeed learner actors (data-parallel ranks) that own the trainable LoRA model."""

    @field_validator("num_gpus_per_worker")
    @classmethod
    def _one_device_per_rank(cls, value: float) -> float:
        if value > 1:
            raise ValueError(f"a learner rank drives one GPU (got {value:g}): run more ranks (num_workers) instead")
        return value

    zero_stage: int = Field(
        0,
        ge=0,
        le=3,
        description="DeepSpeed ZeRO stage 0-3. Large models on GPUs: 2 (or 3 when the base does not fit one GPU) with "
        "dtype bfloat16 and gradient_checkpointing. Under 3 the LoRA weights are gathered for snapshots and ranks "
        "run equally many forwards.",
    )
    zero3_param_persistence_threshold: int | None = Field(
        None,
        ge=0,
        description="ZeRO-3 only: parameters with fewer elements stay whole on every rank (DeepSpeed's "
        "stage3_param_persistence_threshold; None keeps its default, 1e5, under which LoRA weights of rank r and "
        "width d are partitioned once r * d reaches it). 0 partitions everything.",
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Training dtype (fp32 on CPU).")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward (less GPU memory for long sequences, ~30% slower)."
    )
    learning_rate: float = Field(1e-3, gt=0, description="AdamW learning rate during GRPO.")
    micro_batch_size: int = Field(8, ge=1, description="Sequences per forward/backward.")
    logprob_micro_batch_size: int = Field(
        8,
        ge=1,
        description="Sequences per forward of the no-grad log-prob passes (KL reference, old policy, sync check).",
    )
    grad_clip: float = Field(1.0, gt=0, description="Gradient-norm clip.")


class AlgoConfig(StrictModel):
    """GRPO: advantage estimator, loss, KL to the reference (adapter disabled)."""

    advantage: str = Field(
        "grpo_no_std",
        description="Registered advantage estimator: grpo_no_std (Dr. GRPO, keeps the asymmetric payoff), "
        "grpo_batch_std, or grpo (per-group std, which erases it).",
    )
    policy_loss: str = Field("clipped", description="Registered policy-loss name.")
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip epsilon.")
    dual_clip: float | None = Field(3.0, gt=1, description="Dual-clip bound c for negative advantages; None: off.")
    old_logprobs: Literal["learner", "rollout"] = Field(
        "learner",
        description="Old-policy logprobs for the ratio: recomputed on the learner before the update (no grad), "
        "or vLLM's from the rollout.",
    )
    tis_cap: float | None = Field(
        None,
        gt=0,
        description="With old_logprobs=learner: weight each token by min(pi_old / pi_vllm, tis_cap) (truncated "
        "importance sampling against the rollout engine's sampler); None: off.",
    )
    kl_coef: float = Field(0.02, ge=0, description="Weight of the k3 KL penalty to the reference model.")
    kl_reference: Literal["base", "init_adapter"] = Field(
        "base",
        description="KL reference: the base model (adapter disabled), or a frozen copy of the adapter GRPO "
        "started from (e.g. the SFT adapter), loaded as a second adapter.",
    )

    @model_validator(mode="after")
    def _tis_needs_learner_logprobs(self) -> AlgoConfig:
        if self.tis_cap is not None and self.old_logprobs != "learner":
            raise ValueError("tis_cap corrects learner-recomputed old logprobs: set old_logprobs: learner")
        return self

    loss_agg: Literal["token-mean", "seq-mean"] = Field("token-mean", description="How token losses average.")
    epochs_per_batch: int = Field(1, ge=1, description="Learner passes over each rollout batch.")


class AugmentConfig(StrictModel):
    """Perturbed views of session prompts for SFT and GRPO (`pipelines.prompts.augment`; template sets are
    left alone)."""

    probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Chance of each perturbation per drawn row: a line-number offset (the citations and anomaly "
        "lines move with it, so numbers must be read from the prompt), shuffled group order, extra lines of a "
        "routine template, a neutral free-text line. 0: rows as stored.",
    )
    max_line_offset: int = Field(
        200,
        ge=0,
        description="Line numbers are shifted by 1..this (a few digits more per citation: prompts grow a little).",
    )
    max_extra_routine_lines: int = Field(3, ge=0, description="At most this many extra routine lines.")


class TrainConfig(StrictModel):
    """Driver loop settings."""

    steps: int = Field(4, ge=0, description="GRPO steps.")
    prompts_per_step: int = Field(4, ge=1, description="Prompts sampled per step (each gets G completions).")
    anomalous_share: float | None = Field(
        None, ge=0, le=1, description="Share of anomalous prompts per step (None: as they come in the data)."
    )
    seed: int = Field(0, description="Seed for prompt order and sampling.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Perturbed training views.")
    output_dir: str = Field("runs/quickstart", description="Adapters, metrics and TensorBoard logs go here.")
    init_adapter: str | None = Field(None, description="Adapter to start GRPO from; default: the SFT adapter (v0).")
    keep_adapters: int | None = Field(
        5,
        ge=1,
        description="Adapter versions kept on disk, in <output_dir>/adapters and in each rollout worker's temp "
        "folder: the newest N, plus v0 (the SFT/initial adapter) and the adapter GRPO started from (the KL "
        "reference), which are never pruned. None keeps every version.",
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Checkpoint every N GRPO steps and after the last (adapter, optimizer, sampler cursor, RNG "
        "states) under <output_dir>/checkpoints; `logrl train --resume` continues from the newest. None: never.",
    )
    keep_checkpoints: int = Field(2, ge=1, description="Complete checkpoints kept (the newest N).")
    overlap_rollout: bool = Field(
        False,
        description="Sample step k+1's completions while step k's reference pass, rewards and update run (one-step "
        "off-policy, as asynchronous GRPO systems do): batch k+1 comes from adapter v_k, one version behind the "
        "learner (metric rollout/policy_lag). The clipped ratio then uses the learner's recomputed old log-probs; "
        "set algo.tis_cap to also correct for the sampler being one version behind. Pays off when rollout and "
        "learner have their own devices; on a small CPU box they share the cores.",
    )
    mlflow: bool = Field(
        False,
        description="Also log to MLflow: params from this config, metrics per step (SFT and GRPO), the final adapter "
        "and `logrl eval`'s report as artifacts, all in one MLflow run per output_dir. Needs mlflow-skinny "
        "(`make install` adds it; see mlflow-requirements.txt).",
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI; None: a local SQLite store, no server, at <output_dir>/mlflow/mlflow.db "
        "with artifacts beside it (browse with `mlflow ui --backend-store-uri sqlite:///<that file>`).",
    )
    mlflow_experiment: str = Field("logrl", min_length=1, description="MLflow experiment name.")
    placement_timeout_s: float | None = Field(
        900,
        gt=0,
        description="How long to wait for each role's placement group (its CPUs and GPUs) before failing with what "
        "the cluster lacks; an autoscaling cluster may need minutes to add GPU nodes. None waits forever.",
    )
