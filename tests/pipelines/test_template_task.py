"""RationAnomaly's template task: its own short prompt, and short teacher rationales that stay fully grounded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contract.completion_format import parse_completion, render_completion
from pipelines.prompts.render import (
    FAST_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    TEMPLATE_FAST_SYSTEM_PROMPT,
    TEMPLATE_SYSTEM_PROMPT,
    build_messages,
    render_window,
)
from pipelines.prompts.teacher import FAILURE_WORDS, TEMPLATE_QUOTE_CHARS, rule_rationale, sft_examples
from reward_workers.config import RewardConfig
from reward_workers.registry import RewardInput
from reward_workers.rewards.grounding_reward import grounding_reward

PATCH = Path(__file__).resolve().parents[2] / "data" / "rationanomaly" / "rationanomaly_anomaly_patch.json"
CITATION = re.compile(r'^L1 "([^"]+)"')
OTHERS = [  # written here: a routine message, register dumps (hex), a failure word judged normal
    ("generating core.<*>", "normal"),
    ("r08=0x022177e8 r09=0x02217468 r10=0x02217628 r11=0x00237ed8", "normal"),
    ("instruction cache parity error corrected", "normal"),
    ("<*> exited abnormally due to signal: Aborted", "anomalous"),
    ("MidplaneSwitchController::receiveTrain() iap failed: <*> <*> ec000000", "anomalous"),
    ("node card vpd check: <*> node in processor card slot <*> do not match", "anomalous"),
]


def _templates() -> list[tuple[str, str]]:
    patch = json.loads(PATCH.read_text(encoding="utf-8"))
    labels = {"abnormal": "anomalous", "normal": "normal"}
    return [(record["input"], labels[record["rectified"]]) for record in patch] + OTHERS


def _session(text: str, label: str) -> list[dict]:
    line_label = "-" if label == "normal" else "A"  # what the template CSV reader gives a row
    return [
        {"label": line_label, "level": None, "component": None, "content": text, "template": text, "template_id": 1}
    ]


def test_template_runs_get_their_own_short_prompt_and_sessions_keep_theirs():
    for fast, system in ((False, TEMPLATE_SYSTEM_PROMPT), (True, TEMPLATE_FAST_SYSTEM_PROMPT)):
        messages = build_messages("L1: generating core.<*>", fast=fast, data_format="templates")
        assert messages == [
            {"role": "system", "content": system},
            {"role": "user", "content": "Log template:\nL1: generating core.<*>"},
        ]
    assert build_messages("L1 KERNEL INFO: a", data_format="bgl")[0]["content"] == SYSTEM_PROMPT
    assert build_messages("L1 KERNEL INFO: a", fast=True)[0]["content"] == FAST_SYSTEM_PROMPT
    # The point of it: the system prompt is most of every training sequence on this task.
    assert len(TEMPLATE_SYSTEM_PROMPT) < 0.7 * len(SYSTEM_PROMPT)
    assert len(TEMPLATE_FAST_SYSTEM_PROMPT) < 0.7 * len(FAST_SYSTEM_PROMPT)
    for prompt in (TEMPLATE_SYSTEM_PROMPT, TEMPLATE_FAST_SYSTEM_PROMPT):
        assert 'L1 "<verbatim text>"' in prompt and "<answer></answer>" in prompt and "never instructions" in prompt


def test_sft_examples_use_the_runs_task_prompt():
    rows = [{"prompt": "L1: generating core.<*>", "label": "normal", "reference": 'L1 "generating core" ok.'}] * 8
    systems = {ex["messages"][0]["content"] for ex in sft_examples(rows, 0.5, seed=3, data_format="templates")}
    assert systems == {TEMPLATE_SYSTEM_PROMPT, TEMPLATE_FAST_SYSTEM_PROMPT}


@pytest.mark.parametrize("text,label", _templates())
def test_template_rationale_is_short_verbatim_and_fully_grounded(text: str, label: str):
    lines = _session(text, label)
    prompt = render_window(lines, 160)
    rationale = rule_rationale(lines, label, prompt)
    assert rationale.endswith(f"{label}.") and len(rationale) <= 130, rationale
    shown = prompt.split(": ", 1)[1]  # the template as the prompt shows it (long ones are cut)
    if not re.search(r"[A-Za-z0-9]{3,}", shown):
        assert rationale.startswith("L1 ") and '"' not in rationale  # nothing to quote: cited by number
        return
    quoted = CITATION.match(rationale)
    assert quoted, rationale
    fragment = quoted.group(1)
    assert fragment in shown and len(fragment) <= TEMPLATE_QUOTE_CHARS, (fragment, shown)
    failures = [word for word in re.findall(r"[a-z]+", shown.lower()) if word in FAILURE_WORDS]
    if label == "anomalous" and failures:
        assert failures[0] in fragment.lower() and failures[0] in rationale  # the quote shows the deciding word
    completion = render_completion(rationale, label)
    assert parse_completion(completion).verdict == label
    sample = RewardInput(prompt, completion, label, completion, anomaly_lines=(1,) if label == "anomalous" else ())
    assert grounding_reward(sample, RewardConfig()) == pytest.approx(1.0)
