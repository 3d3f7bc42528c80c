"""R-Log trajectories (small samples written here in the published shape) as SFT rows and as a teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.completion_format import parse_completion, render_completion
from pipelines.prompts.rlog_import import RLogTeacher, convert_record, load_rlog, sft_rows
from pipelines.prompts.teacher import sft_examples

INSTRUCTION = "Classify the given log entries into normal and abnormal categories."


def record(text: str, label: str, reasoning: str) -> dict:
    return {"instruction": INSTRUCTION, "input": text, "label": label, "reasoning": reasoning}


SAMPLE = [
    record("disk sda1 unreadable", "abnormal", "<think>An explicit read failure.</think><answer>abnormal</answer>"),
    record("node <*> booted", "normal", "<think>A routine boot message.</think>\n<answer>normal</answer>"),
    record("fan speed <*> rpm", "normal", "Plain text with no think tags. <answer>normal</answer>"),
    record("link <*> down", "normal", "<think>Says down.</think><answer>abnormal</answer>"),
    {
        "instruction": "Interpret the log message.",
        "input": "Syntax error on line 7",
        "label": "It means ...",
        "reasoning": "<think>The config is wrong.</think><answer>It means the file has a syntax error.</answer>",
    },
    {"instruction": INSTRUCTION, "input": "cpu <*> ok", "output": "<think>Fine.</think><answer>normal</answer>"},
    record("x", "normal", "<think><answer>normal</answer></think><answer>normal</answer>"),
    "not a record",
]


@pytest.fixture
def rlog_file(tmp_path: Path) -> Path:
    path = tmp_path / "AnomalyDetection_with_reason.json"
    path.write_text(json.dumps(SAMPLE, indent=4))
    return path


def test_anomaly_detection_records_are_kept_and_the_rest_counted_by_reason(rlog_file: Path):
    kept, skipped = load_rlog([rlog_file])
    assert [(item["input"], item["label"], item["index"]) for item in kept] == [
        ("disk sda1 unreadable", "anomalous", 0),
        ("node <*> booted", "normal", 1),
        ("cpu <*> ok", "normal", 5),
    ]
    assert kept[0]["reference"] == "An explicit read failure." and kept[0]["source"] == str(rlog_file)
    assert skipped == {
        "not <think>…</think><answer>…</answer>": 1,
        "empty or tagged thinking": 1,
        "answer does not match the record's label": 1,
        "not an anomaly-detection answer": 1,
        "not a record with a text input": 1,
    }


def test_rows_have_the_project_shape_and_make_valid_sft_completions(rlog_file: Path):
    rows = sft_rows(load_rlog([rlog_file])[0], max_prompt_tokens=640)
    assert rows[0] | {"source": "s"} == {
        "id": "rlog000000",
        "prompt": "L1: disk sda1 unreadable",
        "label": "anomalous",
        "reference": "An explicit read failure.",
        "split": "train",
        "source": "s",
        "start_offset": 0,
        "n_lines": 1,
        "templates": ["disk sda1 unreadable"],
        "template_ids": [-1],
        "anomaly_lines": [1],
    }
    for example in sft_examples(rows, fast_fraction=0.5, seed=0):
        assert parse_completion(example["completion"]).well_formed
    assert render_completion(rows[1]["reference"], rows[1]["label"]).endswith("<answer>normal</answer>")


def test_the_teacher_uses_a_trajectory_only_for_the_same_template_and_label(rlog_file: Path):
    teacher = RLogTeacher(load_rlog([rlog_file])[0])
    result = teacher.teach(
        [
            {"templates": ["disk sda1 unreadable"], "label": "anomalous"},
            {"templates": ["disk sda1 unreadable"], "label": "normal"},  # a corrected label disagrees
            {"templates": ["never seen"], "label": "normal"},
            {"templates": ["node <*> booted", "cpu <*> ok"], "label": "normal"},  # a window, not one template
        ]
    )
    assert result.references == ["An explicit read failure.", None, None, None]
    assert result.summary()["rejected"] == {
        "no trajectory for this template": 2,
        "trajectory answer does not match the label": 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a JSON file"), ('{"a": 1}', "expected a JSON array of R-Log records, got dict")],
)
def test_bad_files_name_the_field_and_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"data.teacher.rlog_paths: .*r.json: {message}"):
        load_rlog([path])
    with pytest.raises(FileNotFoundError, match="data.teacher.rlog_paths: .*nope.json: no such file"):
        load_rlog([tmp_path / "nope.json"])


def test_convert_record_accepts_case_and_spacing_in_the_answer():
    item, reason = convert_record(record("a b", "Abnormal", "<think> t </think> <answer> Abnormal </answer>"))
    assert (item, reason) == ({"input": "a b", "label": "anomalous", "reference": "t"}, "")
