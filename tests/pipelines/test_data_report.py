"""The prepared-dataset report: counts from the summary, token lengths from the split files, a histogram PNG."""

from __future__ import annotations

import json

from pipelines.building.report import HISTOGRAM_FILE, render_report, write_data_report


def _summary(tmp_path, dead_letters):
    rows = {"train": ["a" * 30, "b" * 60, "c" * 90, "d" * 3], "test": ["e" * 300]}
    paths = {}
    for split, prompts in rows.items():
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"prompt": p, "label": "normal"}) + "\n" for p in prompts))
        paths[split] = str(path)
    return {
        "format": "bgl",
        "session": "window",
        "split": "chronological",
        "teacher": "rule",
        "lines_read": 110,
        "good_lines": 100,
        "malformed": 10,
        "dead_letters": dead_letters,
        "templates": 7,
        "unmatched_lines": 0,
        "unlabelled_sessions": 0,
        "max_prompt_tokens": 64,
        "splits": {"train": {"sessions": 4, "anomalous": 1}, "test": {"sessions": 1, "anomalous": 0}},
        "paths": paths,
    }


def test_report_counts_splits_dead_letters_and_prompt_lengths(tmp_path):
    summary = _summary(tmp_path, {"invalid UTF-8": 7, "NUL byte": 3})
    report = write_data_report(summary, tmp_path).read_text()
    assert "| train | 4 | 1 | 0.250 | 20 | 30 | 30 |" in report  # 3-byte tokens: 1, 10, 20, 30
    assert "| test | 1 | 0 | 0.000 | 100 | 100 | 100 |" in report
    assert "| NUL byte | 3 |" in report and "| invalid UTF-8 | 7 |" in report
    assert "lines read: 110, kept: 100, dead letters: 10" in report
    assert (tmp_path / HISTOGRAM_FILE).stat().st_size > 1000


def test_a_clean_build_says_no_dead_letters(tmp_path):
    assert "## Dead letters by kind\n\nnone" in render_report(_summary(tmp_path, {}), {"train": [], "test": []})
