"""Typed settings for reward scoring (the `reward` section of the YAML config)."""

from __future__ import annotations

from pydantic import Field

from pipelines.config import PlacementStrategy, StrictModel


class AnswerPayoffs(StrictModel):
    """Payoff per confusion cell; a missed anomaly (fn) costs more than a false alarm (fp)."""

    tp: float = Field(1.0, description="Says anomalous, label anomalous.")
    tn: float = Field(1.0, description="Says normal, label normal.")
    fp: float = Field(-0.5, description="Says anomalous, label normal (false alarm).")
    fn: float = Field(-1.5, description="Says normal, label anomalous (missed anomaly).")
    invalid: float | None = Field(
        None,
        description="No parsable verdict (malformed completion). None = the worst of tp/tn/fp/fn, so "
        "breaking the format is never a way to dodge a wrong answer.",
    )

    def invalid_payoff(self) -> float:
        """The payoff for a completion without a verdict."""
        return self.invalid if self.invalid is not None else min(self.tp, self.tn, self.fp, self.fn)


class GroundingConfig(StrictModel):
    """How cited evidence and similarity to the teacher rationale combine into the grounding reward."""

    max_citations: int = Field(
        5, ge=1, description="At most this many grounded citations count; citing more dilutes the score."
    )
    target_citations: int = Field(
        1,
        ge=1,
        description="Grounded citations needed for full evidence credit where no anomaly line guides it (a normal "
        "verdict, an anomaly no line carries); more add nothing.",
    )
    max_anomaly_groups: int = Field(
        3,
        ge=1,
        description="An anomalous verdict is fully covered by citing every anomaly group the prompt shows, up to this "
        "many (the teacher cites as many: pipelines.prompts.teacher.MAX_ANOMALY_CITATIONS).",
    )
    min_quote_chars: int = Field(
        12, ge=1, description="A quote is evidence with this many characters, or with `min_quote_words` words."
    )
    min_quote_words: int = Field(2, ge=1, description="...or this many words of 3+ letters/digits.")
    similarity_share: float = Field(
        0.5, ge=0, le=1, description="Share of the score scaled by BLEU/ROUGE-L similarity to the reference."
    )


class RewardConfig(StrictModel):
    """Which rewards run, their weights, and the pool that runs them."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"format": 0.5, "answer": 1.0, "grounding": 0.5, "brevity": 0.1},
        description="Reward name -> weight; every name must be registered in reward_workers.",
    )
    payoffs: AnswerPayoffs = Field(default_factory=AnswerPayoffs, description="Asymmetric answer payoffs.")
    grounding: GroundingConfig = Field(default_factory=GroundingConfig, description="Grounding reward knobs.")
    brevity_target_chars: int = Field(400, ge=1, description="Rationales longer than this lose brevity reward.")
    brevity_decay_chars: int = Field(
        400, ge=1, description="e-folding length of the brevity reward beyond the target (in characters)."
    )
    num_workers: int = Field(1, ge=1, description="Reward actors; samples are split evenly between them.")
    num_cpus_per_worker: float = Field(0.5, gt=0, description="CPUs reserved by each reward actor.")
    placement_strategy: PlacementStrategy = Field(
        "PACK", description="Ray placement-group strategy of the reward actors."
    )
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for a reward batch before failing.")
