"""Rule teacher: short rationales whose every quote is verbatim in the prompt; SFT examples in both modes."""

from __future__ import annotations

import re

import pytest

from pipelines.prompts import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT, render_window
from pipelines.reasoning_format import parse_completion
from pipelines.sessions import fixed_windows, session_label
from pipelines.teacher import TEACHERS, RuleTeacher, Teacher, rule_rationale, sft_examples

CITATION = re.compile(r'L(\d+) "([^"]*)"')


def log(content: str, level: str = "INFO", label: str | None = "-", component: str = "KERNEL", template_id: int = 1):
    return {"label": label, "level": level, "component": component, "content": content, "template_id": template_id}


def shown_entry(window_text: str, number: int) -> str:
    """The prompt line whose entry starts at line `number`."""
    (row,) = [row for row in window_text.split("\n") if re.match(rf"L{number}[ -]", row)]
    return row


@pytest.mark.parametrize("max_lines", [3, 12, 40])
def test_every_quote_is_verbatim_in_its_cited_line(bgl_lines: list[dict], max_lines: int):
    anomalous = 0
    for window in fixed_windows(bgl_lines, 20):
        label = session_label(window)
        text = render_window(window, max_lines)
        rationale = rule_rationale(window, label, text)
        assert len(rationale) < 300
        citations = CITATION.findall(rationale)
        for number, fragment in citations:
            assert fragment and fragment in text
            assert fragment in shown_entry(text, int(number))
        if label == "anomalous" and citations:
            anomalous += 1
            for number, _ in citations:
                first, last = re.match(r"L(\d+)(?:-L(\d+))?", shown_entry(text, int(number))).groups()
                run = window[int(first) - 1 : int(last or first)]
                assert any(row["label"] != "-" for row in run)  # anomalous evidence is an alert line
    assert anomalous >= 15  # of 28 anomalous windows; with few shown lines some alerts are hidden


def test_anomalous_rationale_names_level_and_component():
    lines = [log("routine"), log("data TLB error interrupt", "FATAL", "KERNDTLB", template_id=2)]
    text = render_window(lines, 12)
    rationale = rule_rationale(lines, "anomalous", text)
    assert rationale.startswith('L2 "data TLB error interrupt" (KERNEL FATAL).')
    assert "anomalous" in rationale and "KERNDTLB" not in rationale


def test_normal_rationale_summarises(bgl_lines: list[dict]):
    window = bgl_lines[:20]
    text = render_window(window, 12)
    rationale = rule_rationale(window, "normal", text)
    assert rationale.startswith("20 lines, ")
    assert rationale.endswith("no alert events.")
    assert 'L1 "instruction cache parity error corrected"' in rationale


def test_block_labels_fall_back_to_severe_levels_and_never_invent_evidence():
    lines = [
        log("Receiving block blk_1", label=None, component="dfs.DataNode"),
        log("Got exception while serving blk_1", "WARN", None, "dfs.DataNode", 2),
    ]
    text = render_window(lines, 12)
    assert rule_rationale(lines, "anomalous", text).startswith(
        'L2 "Got exception while serving blk_1" (dfs.DataNode WARN)'
    )
    hidden = render_window(lines, 1)  # the WARN line is past max_lines: nothing may be quoted
    rationale = rule_rationale(lines, "anomalous", hidden)
    assert not CITATION.findall(rationale) and "labelled anomalous" in rationale


def test_quotes_stop_at_quote_marks_and_tags_stay_neutralized():
    lines = [log('bad "</think>" here', "FATAL", "X", "APP")]
    text = render_window(lines, 12)
    rationale = rule_rationale(lines, "anomalous", text)
    assert rationale.startswith('L1 "bad" (APP FATAL)')
    assert "</think>" not in rationale


def test_teacher_interface():
    teacher: Teacher = TEACHERS["rule"]()
    assert isinstance(teacher, RuleTeacher) and teacher.name == "rule"
    lines = [log("ok", component="K")]
    text = render_window(lines, 5)
    assert text == "L1 K INFO: ok"
    assert teacher.rationale(lines, "normal", text) == rule_rationale(lines, "normal", text)


def test_sft_examples_both_modes_round_trip():
    reference = "1 lines, 1 templates, all routine."
    rows = [{"prompt": f"L1 K INFO: ok {i}", "reference": reference, "label": "normal"} for i in range(200)]
    rows[0]["label"] = "anomalous"
    examples = sft_examples(rows, fast_fraction=0.25, seed=7)
    assert examples == sft_examples(rows, fast_fraction=0.25, seed=7)
    fast = [ex for ex in examples if ex["messages"][0]["content"] == FAST_SYSTEM_PROMPT]
    assert 25 < len(fast) < 75
    assert all(ex["messages"][0]["content"] in (SYSTEM_PROMPT, FAST_SYSTEM_PROMPT) for ex in examples)
    for row, example in zip(rows, examples, strict=True):
        parsed = parse_completion(example["completion"])
        assert parsed.well_formed and parsed.verdict == row["label"]
        assert parsed.answer_first == (example["messages"][0]["content"] == FAST_SYSTEM_PROMPT)
        assert example["messages"][1]["content"].endswith(row["prompt"])
    assert all(ex["messages"][0]["content"] == SYSTEM_PROMPT for ex in sft_examples(rows, 0.0, 1))
