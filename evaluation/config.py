"""Typed settings for `logrl eval` (the `eval` section of the YAML config)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from contract.completion_format import FAST_MODE, MODES, REASON_MODE
from pipelines.config import StrictModel

BaselineName = Literal[
    "majority",
    "keyword",
    "domain_cues",
    "logistic_regression",
    "decision_tree",
    "tfidf_logistic_regression",
    "embedding_logistic_regression",
]
# `logrl eval --mode`: the completion modes each choice runs.
EVAL_MODE_CHOICES = {mode: (mode,) for mode in MODES} | {"both": (REASON_MODE, FAST_MODE), "all": MODES}
DEFAULT_KEYWORDS = [
    "error",
    "fail",
    "fatal",
    "exception",
    "interrupt",
    "panic",
    "refused",
    "timeout",
    "corrupt",
    "denied",
    "unable",
    "cannot",
    "lost",
    "died",
]


class EvalConfig(StrictModel):
    """How a trained detector is evaluated and which classical baselines it is compared with."""

    keywords: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KEYWORDS),
        description="Keyword baseline: a session is anomalous if one of these occurs as a word (case-insensitive).",
    )
    fast_max_new_tokens: int | None = Field(
        None,
        ge=2,
        description="Token budget after the `<answer>` prefill in fast mode; None: measured on the model's "
        "tokenizer (the longest verdict plus `</answer>`).",
    )
    force_verdict: bool = Field(
        False,
        description="Budget forcing in reasoning and grounded mode: a completion its token budget cuts before the "
        "answer is closed where it stopped and asked for the verdict (fast mode's budget); the report counts them.",
    )
    batch_size: int = Field(256, ge=1, description="Prompts per engine call (progress is printed per batch).")
    baselines: list[BaselineName] = Field(
        default_factory=lambda: list(get_args(BaselineName)),  # every registered baseline
        description="Baselines fit on the train split: majority class, keyword rule, the domain teacher's cues, "
        "drain3 event counts + LogisticRegression / DecisionTree, TF-IDF of the prompt text + LogisticRegression, "
        "sentence embeddings of the prompt text (all-MiniLM-L6-v2, a pinned wheel fetched on first use) + "
        "LogisticRegression.",
    )
