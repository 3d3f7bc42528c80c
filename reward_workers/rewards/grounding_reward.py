"""The grounding reward: cited evidence must exist in the prompt, scaled by similarity to the teacher rationale."""

from __future__ import annotations

from functools import lru_cache

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from contract.completion_format import parse_completion
from contract.evidence import anomaly_groups, check_evidence, count_prompt_groups
from reward_workers.config import GroundingConfig, RewardConfig
from reward_workers.reward_spec import RewardInput, register_reward


@lru_cache(maxsize=1)
def _bleu() -> BLEU:
    # Effective order: sentence-level BLEU of a short rationale would otherwise be zero on missing 4-grams.
    return BLEU(effective_order=True)


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_rationale(reference: str) -> str:
    """The teacher's rationale: the think text if `reference` is a whole completion, else `reference` itself."""
    parsed = parse_completion(reference)
    return parsed.rationale if parsed.well_formed else reference.strip()


def text_similarity(rationale: str, reference: str) -> float:
    """Mean of sentence BLEU/100 and ROUGE-L F between rationale and reference. Range [0, 1].

    ROUGE-L F falls with the rationale's precision, so padding it with copied text lowers the score.
    """
    if not rationale or not reference:
        return 0.0
    bleu = _bleu().sentence_score(rationale, [reference]).score / 100.0
    rouge_f = _rouge().score(reference, rationale)["rougeL"].fmeasure
    return min(1.0, max(0.0, 0.5 * bleu + 0.5 * rouge_f))


def evidence_score(
    rationale: str, prompt: str, cfg: GroundingConfig, anomaly_lines: tuple[int, ...] | None = None
) -> float:
    """precision x coverage of the rationale's citations. Range [0, 1]; no citation scores 0.

    precision = distinct grounded groups (at most `max_citations`) / all citations, so hallucinated quotes,
    repeated quotes, ranges that are no shown group and citing every line all dilute it. With `anomaly_lines`
    (an `anomalous` verdict on a session whose anomaly lines are known) coverage counts only groups cited on a line
    that carries the anomaly, against the anomaly groups the prompt shows (at most `max_anomaly_groups`), and the
    score is 0 without one: routine evidence neither grounds an anomaly nor pads its coverage. Otherwise (a normal
    verdict, an anomaly no line carries) coverage is grounded groups against `target_citations`.
    """
    check = check_evidence(
        rationale, prompt, cfg.min_quote_chars, anomaly_lines=anomaly_lines or (), min_words=cfg.min_quote_words
    )
    if check.total == 0:
        return 0.0
    precision = min(check.grounded, cfg.max_citations) / check.total
    if anomaly_lines is not None:
        target = max(1, min(anomaly_groups(prompt, anomaly_lines), cfg.max_anomaly_groups))
        return precision * min(check.grounded_anomaly, target) / target
    target = max(1, min(cfg.target_citations, count_prompt_groups(prompt)))
    return precision * min(check.grounded, target) / target


@register_reward("grounding")
def grounding_reward(sample: RewardInput, cfg: RewardConfig) -> float:
    """evidence x ((1 - s) + s x similarity), s = `grounding.similarity_share`. Range [0, 1].

    Evidence gates the score: no citation, or only hallucinated ones, scores 0 whatever the wording; a wrong
    verdict scores 0; an `anomalous` verdict must cite a line that carries the anomaly (when the data names some).
    Quotes count only from the message text, never the header, and only when long enough to mean something.
    Without a reference rationale the score is the evidence alone (a group shares its reference, so GRPO
    advantages are unaffected by that change of scale). A malformed completion has no rationale and scores 0.
    """
    parsed = parse_completion(sample.completion)
    if not parsed.well_formed or not parsed.rationale or parsed.verdict != sample.label:
        return 0.0  # evidence for the wrong verdict is no evidence: a missed anomaly cannot earn grounding
    # An empty tuple means no line carries the anomaly (e.g. an event is missing): any grounded citation counts.
    anomaly_lines = tuple(sample.anomaly_lines) if parsed.verdict == "anomalous" and sample.anomaly_lines else None
    evidence = evidence_score(parsed.rationale, sample.prompt, cfg.grounding, anomaly_lines)
    if evidence == 0.0:
        return 0.0
    reference = reference_rationale(sample.reference)
    if not reference:
        return evidence
    share = cfg.grounding.similarity_share
    return evidence * ((1.0 - share) + share * text_similarity(parsed.rationale, reference))
