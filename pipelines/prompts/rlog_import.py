"""Published reasoning trajectories in R-Log's JSON format as this project's SFT rows, and as a teacher.

An R-Log file is a JSON array of `{"instruction", "input", "label", "reasoning"}` (`output` is accepted for
`reasoning`); `reasoning` is `<think>…</think><answer>…</answer>`. Only anomaly-detection records (answer
normal/abnormal) become rows; the rest are counted by reason. The data is research-only and is never bundled:
point `data.teacher.rlog_paths` at your own copy.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from contract.completion_format import SPECIAL_TAGS
from pipelines.prompts.render import render_window
from pipelines.prompts.teacher import TeachResult
from pipelines.reading.log_formats import parse_template
from pipelines.reading.table_formats import require_file
from pipelines.templates.miner import UNSEEN_ID

RLOG_VERDICTS = {"normal": "normal", "abnormal": "anomalous", "anomalous": "anomalous", "anomaly": "anomalous"}
_TRAJECTORY = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.S)


def _records(path: str | Path, field: str) -> list:
    path = require_file(path, field)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{field}: {path}: not a JSON file ({err})") from None
    if not isinstance(records, list):
        raise ValueError(f"{field}: {path}: expected a JSON array of R-Log records, got {type(records).__name__}")
    return records


def convert_record(record: object) -> tuple[dict | None, str]:
    """(`{input, label, reference}`, "") for a usable anomaly-detection record, else (None, why not)."""
    if not isinstance(record, dict) or not isinstance(record.get("input"), str):
        return None, "not a record with a text input"
    reasoning = record.get("reasoning", record.get("output"))
    if not isinstance(reasoning, str):
        return None, "no reasoning/output text"
    match = _TRAJECTORY.fullmatch(reasoning)
    if match is None:
        return None, "not <think>…</think><answer>…</answer>"
    think, answer = match.group("think").strip(), match.group("answer").strip().lower()
    verdict = RLOG_VERDICTS.get(answer)
    if verdict is None:
        return None, "not an anomaly-detection answer"
    label = record.get("label")
    if isinstance(label, str) and RLOG_VERDICTS.get(label.strip().lower()) != verdict:
        return None, "answer does not match the record's label"
    if not think or any(tag in think for tag in SPECIAL_TAGS):
        return None, "empty or tagged thinking"
    if not record["input"].strip():
        return None, "empty input"
    return {"input": record["input"].strip(), "label": verdict, "reference": think}, ""


def load_rlog(paths: Sequence[str | Path], field: str = "data.teacher.rlog_paths") -> tuple[list[dict], Counter]:
    """Usable trajectories of every file (source, index kept) and the skipped records counted by reason."""
    kept, skipped = [], Counter()
    for path in paths:
        for index, record in enumerate(_records(path, field)):
            item, reason = convert_record(record)
            if item is None:
                skipped[reason] += 1
            else:
                kept.append(item | {"source": str(path), "index": index})
    return kept, skipped


def sft_rows(trajectories: Sequence[dict], max_prompt_tokens: int) -> list[dict]:
    """Trajectories as train rows of the project's shape: a one-template session, its prompt, label, reference."""
    rows = []
    for item in trajectories:
        line = parse_template(item["input"]) | {"template": item["input"], "template_id": UNSEEN_ID}
        rows.append(
            {
                "id": f"rlog{item['index']:06d}",
                "prompt": render_window([line], max_prompt_tokens),
                "label": item["label"],
                "reference": item["reference"],
                "split": "train",
                "source": item["source"],
                "start_offset": item["index"],
                "n_lines": 1,
                "templates": [item["input"]],
                "template_ids": [UNSEEN_ID],
                "anomaly_lines": [1] if item["label"] == "anomalous" else [],
            }
        )
    return rows


class RLogTeacher:
    """References from trajectories whose input is a row's (single) template and whose answer is its label."""

    name = "rlog"

    def __init__(self, trajectories: Sequence[dict]):
        self.by_input: dict[str, list[dict]] = {}
        for item in trajectories:
            self.by_input.setdefault(item["input"], []).append(item)

    def teach(self, rows: Sequence[dict]) -> TeachResult:
        result = TeachResult([])
        for row in rows:
            found = self.by_input.get(row["templates"][0]) if len(row["templates"]) == 1 else None
            agreeing = [item for item in found or [] if item["label"] == row["label"]]
            result.references.append(agreeing[0]["reference"] if agreeing else None)
            if not found:
                result.rejected["no trajectory for this template"] += 1
            elif not agreeing:
                result.rejected["trajectory answer does not match the label"] += 1
        return result
