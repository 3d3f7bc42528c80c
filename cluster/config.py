"""The one logrl config: every section, loaded from YAML, with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from evaluation.config import EvalConfig
from pipelines.config import DataConfig, StrictModel
from reward_workers.config import RewardConfig
from rl_actors.config import (
    AlgoConfig,
    LearnerConfig,
    ModelConfig,
    RolloutConfig,
    SFTConfig,
    TinyModelConfig,
    TrainConfig,
)
from serving.config import ServeConfig


def _default_config() -> Path:
    """configs/quickstart.yaml beside the source tree; from an installed (non-editable) package, under the cwd."""
    beside = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
    return beside if beside.exists() else Path.cwd() / "configs" / "quickstart.yaml"


DEFAULT_CONFIG = _default_config()


class RayConfig(StrictModel):
    """How to reach Ray: an existing cluster, or a local one started by logrl."""

    address: str | None = Field(None, description="Cluster address; None starts or joins a local Ray.")
    num_cpus: int | None = Field(8, ge=1, description="Logical CPUs for a local Ray (2-core boxes need ~8).")


class LogrlConfig(StrictModel):
    """Everything a logrl run needs, section by section."""

    data: DataConfig
    model: ModelConfig
    tiny_model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _colocation_fits(self) -> LogrlConfig:
        rollout, learner = self.rollout, self.learner
        if not rollout.colocate_with_learner:
            return self
        field = "rollout.colocate_with_learner"
        if rollout.num_workers != learner.num_workers:
            raise ValueError(
                f"{field}: one rollout engine per learner rank, got rollout.num_workers {rollout.num_workers} and "
                f"learner.num_workers {learner.num_workers}"
            )
        gpus = rollout.num_gpus_per_worker + learner.num_gpus_per_worker
        if gpus > 1:
            raise ValueError(
                f"{field}: the two roles share one GPU per bundle: rollout.num_gpus_per_worker + "
                f"learner.num_gpus_per_worker must be at most 1 (got {gpus:g}; e.g. 0.5 each)"
            )
        if rollout.tensor_parallel_size > 1:
            raise ValueError(f"{field}: a colocated engine runs on its learner rank's one GPU: tensor_parallel_size 1")
        if rollout.sleeps and self.train.overlap_rollout:
            raise ValueError(
                "train.overlap_rollout: the colocated engines sleep while the learner works (rollout."
                "sleep_during_update), so they cannot sample the next batch then: set one of them to false"
            )
        return self

    @model_validator(mode="after")
    def _grounded_rollouts_use_learner_logprobs(self) -> LogrlConfig:
        # Grammar-masked sampling: vLLM's log-probs are of the masked distribution, not the policy the learner
        # updates, and reweighting the samples to the policy (TIS) would undo the guidance they are sampled for.
        if self.rollout.grounded and self.algo.old_logprobs != "learner":
            raise ValueError(
                "rollout.grounded: the engine samples under the evidence grammar, so its log-probs are not the "
                "policy's: set algo.old_logprobs: learner"
            )
        if self.rollout.grounded and self.algo.tis_cap is not None:
            raise ValueError(
                "rollout.grounded: algo.tis_cap would reweight the grammar-guided samples back to the free policy, "
                "undoing the guidance: set tis_cap: null"
            )
        return self

    @model_validator(mode="after")
    def _one_learner_rank_per_gpu(self) -> LogrlConfig:
        # Ranks with a fraction of a GPU each may be packed onto one GPU: NCCL refuses two ranks on one device. Only
        # colocation, where each bundle holds a whole GPU shared with one rollout engine, gives each rank its own.
        learner, rollout = self.learner, self.rollout
        share = learner.num_gpus_per_worker
        if learner.num_workers == 1 or share in (0, 1):
            return self
        bundle = share + (rollout.num_gpus_per_worker if rollout.colocate_with_learner else 0)
        if bundle != 1:
            raise ValueError(
                f"learner.num_gpus_per_worker: {share:g} of a GPU for each of {learner.num_workers} ranks lets Ray "
                "put two ranks on one GPU, which NCCL refuses: give each rank a whole GPU (1), or colocate each with "
                "a rollout engine so the two shares add up to 1 (rollout.colocate_with_learner)"
            )
        return self


class ConfigError(ValueError):
    """A config problem, phrased with the dotted path of the offending field."""


def parse_config(raw: dict[str, Any], source: str = "<dict>") -> LogrlConfig:
    """Validate a raw mapping; on failure list every bad field by its dotted path."""
    try:
        return LogrlConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"invalid config {source}:\n  " + "\n  ".join(map(_error_line, err.errors()))) from None


def _error_line(error: dict) -> str:
    """`dotted.field: message`; a check across fields names its fields itself (`rollout.x: ...`)."""
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not where or message.startswith(f"{where}."):
        return message
    return f"{where}: {message}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> LogrlConfig:
    """Load YAML (default: configs/quickstart.yaml) and apply `a.b.c=value` overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {path}: top level must be a mapping")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return parse_config(raw, str(path))
