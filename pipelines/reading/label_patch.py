"""Label corrections for template sets: a JSON patch (RationAnomaly's format) applied to template line records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PATCH_REPORT_FILE = "label_patch_report.json"
# Patch verdicts -> the pipeline's line labels (what read_template_records writes: "-" is normal).
PATCH_LINE_LABELS = {"abnormal": "abnormal", "normal": "-"}
MAX_LISTED_UNMATCHED = 20


@dataclass(frozen=True)
class LabelPatch:
    """Corrected labels by exact template text, read from a patch file."""

    path: str
    labels: dict[str, str]  # template text -> line label ("abnormal" or "-")


def load_label_patch(path: str | Path, field: str = "data.label_patch") -> LabelPatch:
    """Read a JSON array of `{"input": template, "rectified": "normal"|"abnormal", ...}` records.

    An entry naming the same template twice with different labels is an error; so is any record without a
    string `input` or with an unknown `rectified` label. Errors name the config field, the file and the record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{field}: {path}: no such file")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{field}: {path}: not JSON ({err})") from None
    if not isinstance(records, list) or not records:
        raise ValueError(f"{field}: {path}: must be a non-empty JSON array of patch records")
    labels: dict[str, str] = {}
    for index, record in enumerate(records):
        text = record.get("input") if isinstance(record, dict) else None
        verdict = record.get("rectified") if isinstance(record, dict) else None
        if not isinstance(text, str) or verdict not in PATCH_LINE_LABELS:
            raise ValueError(
                f"{field}: {path}: record {index} needs a string `input` and `rectified` normal|abnormal: {record!r}"
            )
        label = PATCH_LINE_LABELS[verdict]
        if labels.get(text, label) != label:
            raise ValueError(f"{field}: {path}: record {index} relabels {text!r} differently from an earlier record")
        labels[text] = label
    return LabelPatch(str(path), labels)


def apply_label_patch(records: Iterable[dict], patch: LabelPatch) -> dict:
    """Overwrite the `label` of template records whose `content` a patch entry names exactly; return a report.

    The report counts labels changed (each direction), records matched, and patch entries that matched no
    record (listed, up to MAX_LISTED_UNMATCHED): an entry off by one character silently changes nothing, so
    it must be visible.
    """
    matched: set[str] = set()
    to_abnormal = to_normal = matched_records = 0
    for record in records:
        label = patch.labels.get(record["content"])
        if label is None:
            continue
        matched.add(record["content"])
        matched_records += 1
        if record["label"] != label:
            to_abnormal += label == "abnormal"
            to_normal += label != "abnormal"
            record["label"] = label
    unmatched = [text for text in patch.labels if text not in matched]
    return {
        "path": patch.path,
        "entries": len(patch.labels),
        "matched_entries": len(matched),
        "matched_records": matched_records,
        "labels_changed": to_abnormal + to_normal,
        "normal_to_abnormal": to_abnormal,
        "abnormal_to_normal": to_normal,
        "unmatched_entries": len(unmatched),
        "unmatched": unmatched[:MAX_LISTED_UNMATCHED],
    }


def write_patch_report(output_dir: str | Path, report: dict | None) -> None:
    """Keep the report beside the prompts (None removes a stale one), for the dataset summary to pick up."""
    path = Path(output_dir) / PATCH_REPORT_FILE
    if report is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps(report, indent=2) + "\n")


def read_patch_report(output_dir: str | Path) -> dict | None:
    """The report `write_patch_report` left in `output_dir`, or None."""
    path = Path(output_dir) / PATCH_REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
