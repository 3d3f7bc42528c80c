"""A reward whose maximum is not the honest teacher rationale is a bug: every shortcut variant scores lower.

Over every window of the bundled BGL sample and every template of the bundled label patch, with both offline
teachers, the teacher's own completion must out-score (strictly, weighted total of format, answer, grounding and
brevity at the shipped weights) each variant: a range that is no shown group, padding with a routine citation,
a repeated citation, a wrong line number, header words as a quote, the pasted prompt, answer only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contract.completion_format import render_completion
from contract.evidence import extract_citations, index_prompt
from pipelines.prompts.domain_teacher import DomainTeacher
from pipelines.prompts.render import render_window
from pipelines.prompts.rows import rows_in_process
from pipelines.prompts.teacher import RuleTeacher
from reward_workers.config import RewardConfig
from reward_workers.registry import RewardInput
from reward_workers.scorer import RewardScorer

REPO = Path(__file__).resolve().parents[2]
BGL = REPO / "data" / "bgl" / "BGL_2k.log"
PATCH = REPO / "data" / "rationanomaly" / "rationanomaly_anomaly_patch.json"
WEIGHTS = {"format": 0.5, "answer": 1.0, "grounding": 0.5, "brevity": 0.1}  # the shipped configs' (no perplexity)
CITE = re.compile(r'L\d+(?:-L\d+)?(?:,L\d+(?:-L\d+)?)* "[^"]*"')


def template_rows(teacher) -> list[dict]:
    rows = []
    for i, record in enumerate(json.loads(PATCH.read_text(encoding="utf-8"))):
        label = "anomalous" if record["rectified"] == "abnormal" else "normal"
        line = {"label": "A" if label == "anomalous" else "-", "level": None, "component": None}
        line |= {"content": record["input"], "template": record["input"], "template_id": 1}
        prompt = render_window([line], 160)
        rows.append(
            {"id": f"t{i}", "prompt": prompt, "label": label, "anomaly_lines": [1] if label == "anomalous" else []}
        )
        rows[-1]["reference"] = teacher.rationale([line], label, prompt)
    return rows


def variants(row: dict) -> dict[str, str]:
    """Rationales that try to beat the teacher's without being better evidence."""
    reference, prompt = row["reference"], row["prompt"]
    index = index_prompt(prompt)
    cited = extract_citations(reference)
    out = {"pasted prompt": prompt, "teacher + pasted prompt": f"{reference} {prompt}", "empty": ""}
    last = max(index.by_line)
    if cited:
        first = CITE.search(reference)
        quote = cited[0].quote
        out["range over the window"] = reference.replace(first.group(0), f'L1-L{last + 1} "{quote}"', 1)
        out["repeated citation"] = f"{reference} {first.group(0)}"
        own = index.by_line.get(cited[0].first)
        wrong = next((n for n, g in sorted(index.by_line.items()) if g != own), last + 7)
        out["wrong line number"] = reference.replace(first.group(0), f'L{wrong} "{quote}"', 1)
        out["header words"] = reference.replace(first.group(0), f'L{cited[0].first} "KERNEL FATAL error"', 1)
    named = {index.by_line.get(c.first) for c in cited}
    routine = [
        g for i, g in enumerate(index.groups) if i not in named and not set(g.numbers) & set(row["anomaly_lines"])
    ]
    if routine:
        text = routine[0].text[:40].rsplit(" ", 1)[0] if len(routine[0].text) > 40 else routine[0].text
        out["padded with a routine citation"] = f'{reference} L{routine[0].numbers[0]} "{text}" also shown.'
    return out


def check_teacher_is_maximum(rows: list[dict]) -> int:
    scorer = RewardScorer(RewardConfig(weights=WEIGHTS))
    compared = 0
    for row in rows:

        def inputs(text: str, row: dict = row) -> RewardInput:
            return RewardInput(row["prompt"], text, row["label"], row["reference"], None, tuple(row["anomaly_lines"]))

        honest = scorer.score([inputs(render_completion(row["reference"], row["label"]))])[0]["total"]
        others = variants(row)
        scores = scorer.score([inputs(render_completion(text, row["label"])) for text in others.values()])
        scores.append(scorer.score([inputs(f"<answer>{row['label']}</answer>")])[0])
        for name, score in zip([*others, "answer only"], scores, strict=True):
            assert score["total"] < honest, (name, row["id"], row["reference"], score, honest)
            compared += 1
    return compared


@pytest.mark.parametrize("teacher", [RuleTeacher(), DomainTeacher()], ids=["rule", "domain"])
def test_the_teacher_beats_every_variant_on_bgl_windows(teacher) -> None:
    rows = rows_in_process(BGL, "bgl", 20, 400, teacher)
    assert sum(row["label"] == "anomalous" for row in rows) >= 20
    assert check_teacher_is_maximum(rows) > 500


@pytest.mark.parametrize("teacher", [RuleTeacher(), DomainTeacher()], ids=["rule", "domain"])
def test_the_teacher_beats_every_variant_on_templates(teacher) -> None:
    assert check_teacher_is_maximum(template_rows(teacher)) > 800
