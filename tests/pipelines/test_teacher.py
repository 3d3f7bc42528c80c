"""Rule teacher: short rationales whose every quote is verbatim in the prompt; SFT examples in both modes."""

from __future__ import annotations

import re

import pytest

from contract.completion_format import parse_completion
from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT, render_window
from pipelines.prompts.teacher import TEACHERS, RuleTeacher, Teacher, rule_rationale, sft_examples
from pipelines.sessions.grouping import anomaly_lines, fixed_windows, session_label

CITATION = re.compile(r'L(\d+) "([^"]*)"')


def log(content: str, level: str = "INFO", label: str | None = "-", component: str = "KERNEL", template_id: int = 1):
    return {"label": label, "level": level, "component": component, "content": content, "template_id": template_id}


def shown_entry(window_text: str, number: int) -> str:
    """The prompt line of the group whose first line is `number`."""
    (row,) = [row for row in window_text.split("\n") if re.match(rf"L{number}[ ,(:-]", row)]
    return row


def group_numbers(row: str) -> list[int]:
    numbers = []
    for first, last in re.findall(r"L(\d+)(?:-L(\d+))?", row.split(" ", 1)[0]):
        numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


@pytest.mark.parametrize("budget", [100, 160, 640])
def test_every_quote_is_verbatim_in_the_text_of_its_cited_group(bgl_lines: list[dict], budget: int):
    anomalous = 0
    for window in fixed_windows(bgl_lines, 20):
        label = session_label(window)
        text = render_window(window, budget)
        rationale = rule_rationale(window, label, text)
        assert len(rationale) < 300 and " lines, " not in rationale
        assert rationale.endswith(f"{label}.")  # reads consistently with the label, whatever is shown
        citations = CITATION.findall(rationale)
        for number, fragment in citations:
            row = shown_entry(text, int(number))
            shown_text = row.split(": ", 1)[1]  # never the header
            assert fragment in shown_text
            assert len(fragment) >= 12 or len(re.findall(r"[A-Za-z0-9]{3,}", fragment)) >= 2
        if label == "anomalous" and citations:
            anomalous += 1
            for number, _ in citations:
                assert set(group_numbers(shown_entry(text, int(number)))) & set(anomaly_lines(window))
        if label == "normal":
            assert citations and "not routine" not in rationale
    total = sum(session_label(window) == "anomalous" for window in fixed_windows(bgl_lines, 20))
    assert anomalous == total if budget >= 160 else anomalous >= total - 3  # a very small budget may hide alerts


def test_anomalous_rationale_names_level_and_component():
    lines = [log("routine"), log("data TLB error interrupt", "FATAL", "KERNDTLB", template_id=2)]
    text = render_window(lines)
    rationale = rule_rationale(lines, "anomalous", text)
    assert rationale.startswith('L2 "data TLB error interrupt" (KERNEL FATAL).')
    assert rationale.endswith("so the session is anomalous.") and "KERNDTLB" not in rationale


def test_an_anomaly_group_is_cited_on_the_line_that_carries_the_anomaly():
    lines = [log("boot ok", template_id=1), log("data TLB error interrupt", "FATAL", "-", template_id=2)]
    lines += [log("boot ok", template_id=1), log("data TLB error interrupt", "FATAL", "KERNDTLB", template_id=2)]
    text = render_window(lines)
    assert "L2,L4 (x2) KERNEL FATAL: data TLB error interrupt" in text
    # Line 2 has the group's text but no alert label: the anomaly credit is for a quote on line 4.
    assert rule_rationale(lines, "anomalous", text).startswith('L4 "data TLB error interrupt"')


def test_normal_rationale_cites_routine_lines_and_reads_normal(bgl_lines: list[dict]):
    window = bgl_lines[:20]
    text = render_window(window)
    rationale = rule_rationale(window, "normal", text)
    assert rationale.startswith("Routine events: ")
    assert rationale.endswith("so the session is normal.")
    assert 'L1 "instruction cache parity error corrected"' in rationale


def test_block_labels_cite_the_lines_marked_as_carrying_the_anomaly():
    lines = [
        log("Receiving block blk_1", label=None, component="dfs.DataNode"),
        log("Got exception while serving blk_1", "WARN", None, "dfs.DataNode", 2),
        log("Deleting block blk_1 file /x", "INFO", None, "dfs.FSDataset", 3),
    ]
    for row, carries in zip(lines, (False, False, True)):
        row["carries_anomaly"] = carries
    text = render_window(lines)
    rationale = rule_rationale(lines, "anomalous", text)
    assert rationale.startswith('L3 "Deleting block blk_1 file /x" (dfs.FSDataset INFO).')  # not the WARN line
    hidden = render_window(lines, 1)  # the carrying line is cut by the budget: nothing may be quoted
    rationale = rule_rationale(lines, "anomalous", hidden)
    assert not CITATION.findall(rationale) and rationale.endswith("anomalous.")


def test_quotes_stop_at_quote_marks_need_substance_and_tags_stay_neutralized():
    lines = [log('bad input value "</think>" here', "FATAL", "X", "APP")]
    text = render_window(lines)
    rationale = rule_rationale(lines, "anomalous", text)
    assert rationale.startswith('L1 "bad input value" (APP FATAL)')
    assert "</think>" not in rationale
    short = [log("ok <*> <*>", "FATAL", "X", "APP")]  # no word of substance: cited by number only
    assert not CITATION.findall(rule_rationale(short, "anomalous", render_window(short)))
    whole = [log("oops", "FATAL", "X", "APP")]  # a short line with a word is quoted whole: all the evidence it holds
    assert CITATION.findall(rule_rationale(whole, "anomalous", render_window(whole))) == [("1", "oops")]
    two_words = [log("disk full", "FATAL", "X", "APP")]
    assert CITATION.findall(rule_rationale(two_words, "anomalous", render_window(two_words))) == [("1", "disk full")]


def test_teacher_interface():
    teacher: Teacher = TEACHERS["rule"]()
    assert isinstance(teacher, RuleTeacher) and teacher.name == "rule"
    lines = [log("ok", component="K")]
    text = render_window(lines)
    assert text == "L1 K INFO: ok"
    assert teacher.rationale(lines, "normal", text) == rule_rationale(lines, "normal", text)


def test_sft_examples_both_modes_round_trip():
    reference = "Only routine events are shown, so the session is normal."
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


def test_anomalous_session_without_alert_line_is_explained_by_its_missing_event():
    lines = [
        {
            "component": "dfs.DataNode",
            "level": "INFO",
            "template_id": 1,
            "template": "Receiving block <BLK> src: /<IP>",
        },
        {"component": "dfs.FSNamesystem", "level": "INFO", "template_id": 2, "template": "allocateBlock: <*> <BLK>"},
    ]
    text = render_window(lines, 400)
    expected = {1: "Receiving block <BLK> src: /<IP>", 5: "addStoredBlock: blockMap updated: <IP> is added"}
    rationale = RuleTeacher(expected).rationale(lines, "anomalous", text)
    assert "no line shows 'addStoredBlock: blockMap updated" in rationale and "anomalous" in rationale
    assert rationale.startswith('L1 "Receiving block <BLK> src: /<IP>" is there')
    # Nothing missing and no alert line: the rarest events are cited with their counts.
    rare = RuleTeacher({1: "Receiving block <BLK> src: /<IP>"}).rationale(lines + lines[:1], "anomalous", text)
    assert "(x1)" in rare and "anomalous" in rare
