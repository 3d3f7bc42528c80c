"""One evaluated sample: the parsed completion, its checked citations, and the arm that produced it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field

from contract import evidence
from contract.completion_format import parse_completion
from contract.evidence import index_prompt_lines
from pipelines.prompts.domain_teacher import contradicts

FORCED = "forced"  # finish reason of a completion whose verdict budget forcing asked for


@dataclass(frozen=True)
class CitationRecord:
    """One `L<n> "quote"` citation: the cited lines, the quote, and how it fares against the prompt."""

    lines: tuple[int, int]  # first and last cited line (equal for a single line)
    quote: str
    grounded: bool  # the quote is verbatim message text of the cited line (contract.evidence rules)
    carries_anomaly: bool  # grounded, and a line it names is in the row's `anomaly_lines`


@dataclass
class Prediction:
    """A model's answer for one row in one mode; `verdict` is None when the completion does not parse."""

    id: str
    label: str
    mode: str
    verdict: str | None
    well_formed: bool
    rationale: str = ""
    completion: str = ""
    citations: list[CitationRecord] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    anomaly_lines: list[int] = field(default_factory=list)
    anomaly_lines_shown: list[int] = field(default_factory=list)  # those the prompt shows (others can't be cited)
    score: float | None = None  # P(anomalous) from the verdict token's log-probs; None: no verdict token
    contradicts: bool = False  # the rationale argues for the other class (its stance markers, outside quotes)

    def to_dict(self) -> dict:
        """The predictions.jsonl record."""
        record = asdict(self)
        record["citations"] = [asdict(c) | {"lines": list(c.lines)} for c in self.citations]
        return record


@dataclass
class ArmResult:
    """All predictions of one model arm (adapter or base model) in one mode, with the wall time they took."""

    name: str
    mode: str
    predictions: list[Prediction]
    elapsed_s: float
    adapter_path: str | None = None  # None: the base model without an adapter
    adapter_version: int | None = None


def check_citations(rationale: str, prompt: str, anomaly_lines: Collection[int] = ()) -> list[CitationRecord]:
    """Every citation of a rationale, in order, checked by the grounding reward's own rule
    (`contract.evidence.check_citations`)."""
    return [
        CitationRecord((c.citation.first, c.citation.last), c.citation.quote, c.grounded, c.carries_anomaly)
        for c in evidence.check_citations(rationale, prompt, anomaly_lines)
    ]


def predict(
    row: dict,
    mode: str,
    completion: str,
    finish_reason: str | None = None,
    tokens: int = 0,
    score: float | None = None,
) -> Prediction:
    """Parse a full completion (fast mode: prefill included) for `row`, check its citations and its stance."""
    parsed = parse_completion(completion)
    anomaly_lines = [int(n) for n in row.get("anomaly_lines") or []]
    shown = index_prompt_lines(row["prompt"]) if anomaly_lines else {}
    citations = check_citations(parsed.rationale, row["prompt"], anomaly_lines)
    return Prediction(
        id=str(row["id"]),
        label=row["label"],
        mode=mode,
        verdict=parsed.verdict,
        well_formed=parsed.well_formed,
        rationale=parsed.rationale,
        completion=completion,
        citations=citations,
        finish_reason=finish_reason,
        completion_tokens=tokens,
        anomaly_lines=anomaly_lines,
        anomaly_lines_shown=[n for n in anomaly_lines if n in shown],
        score=score,
        contradicts=contradicts(parsed.rationale, parsed.verdict),
    )
