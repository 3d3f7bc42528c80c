"""RationAnomaly's label patch: the bundled file, exact-text application to template records, and its report."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.environment import init_ray
from pipelines.config import DataConfig
from pipelines.reading.label_patch import apply_label_patch, load_label_patch
from pipelines.reading.table_formats import read_template_records

REPO = Path(__file__).resolve().parents[2]
PATCH = REPO / "data" / "rationanomaly" / "rationanomaly_anomaly_patch.json"
COMMA_ENTRY = (
    "Error, getting detailed hw info for node, caught java.io.IOException: Problems with the chip, clear all resets"
)
COMMA_TEMPLATE = COMMA_ENTRY.replace("Error, getting", "Error getting")  # the BGL template it was meant for


def _patch_records() -> list[dict]:
    return json.loads(PATCH.read_text(encoding="utf-8"))


def _template_csv(path: Path, rows: list[tuple[str, int]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["log", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """Templates taken from the patch itself (with their original labels), the comma template, and two others."""
    records = _patch_records()
    to_abnormal = [r["input"] for r in records if r["rectified"] == "abnormal" and r["input"] != COMMA_ENTRY][:3]
    to_normal = [r["input"] for r in records if r["rectified"] == "normal"][:1]
    rows = [(text, 0) for text in to_abnormal] + [(text, 1) for text in to_normal]
    rows += [(COMMA_TEMPLATE, 0), ("generating core.<*>", 0), ("<*> exited abnormally due to signal: Aborted", 1)]
    return _template_csv(tmp_path / "templates.csv", rows)


def test_bundled_patch_is_the_documented_file_with_its_license():
    assert hashlib.sha256(PATCH.read_bytes()).hexdigest() == (
        "1362878716b0d9185359f83c5870178d70a8ee48d3ea02f7dd3857cb70139cf0"
    )
    assert (PATCH.parent / "LICENSE.rationanomaly").is_file() and (PATCH.parent / "NOTICE.rationanomaly").is_file()
    patch = load_label_patch(PATCH)
    assert len(patch.labels) == 181
    assert sorted(patch.labels.values()).count("-") == 2  # abnormal -> normal twice, the rest to abnormal
    assert patch.labels[COMMA_ENTRY] == "abnormal"


def test_patch_changes_labels_by_exact_text_and_reports_what_matched_nothing(small_csv: Path):
    records = read_template_records(small_csv)
    report = apply_label_patch(records, load_label_patch(PATCH))
    labels = {r["content"]: r["label"] for r in records}
    assert report["labels_changed"] == 4 and report["normal_to_abnormal"] == 3 and report["abnormal_to_normal"] == 1
    assert report["matched_entries"] == report["matched_records"] == 4
    assert report["unmatched_entries"] == 181 - 4
    assert len(report["unmatched"]) == 20  # listed up to a limit, counted in full
    assert labels[COMMA_TEMPLATE] == "-"  # one comma apart: exact matching leaves it normal
    assert labels["generating core.<*>"] == "-" and labels["<*> exited abnormally due to signal: Aborted"] == "abnormal"
    assert sum(label == "abnormal" for label in labels.values()) == 4  # 3 corrected + 1 untouched


def test_the_entry_one_comma_off_its_template_is_reported_unmatched(tmp_path: Path, small_csv: Path):
    kept = [r for r in _patch_records() if r["input"] == COMMA_ENTRY or r["rectified"] == "normal"]
    path = tmp_path / "patch.json"
    path.write_text(json.dumps(kept))
    report = apply_label_patch(read_template_records(small_csv), load_label_patch(path))
    # small_csv holds the first abnormal -> normal template, not the second, nor the comma entry's text
    second_to_normal = [r["input"] for r in kept if r["rectified"] == "normal"][1]
    assert sorted(report["unmatched"]) == sorted([COMMA_ENTRY, second_to_normal])
    assert report["matched_entries"] == 1 and report["labels_changed"] == 1


def test_a_label_that_already_agrees_is_matched_but_not_changed(tmp_path: Path):
    text = next(r["input"] for r in _patch_records() if r["rectified"] == "abnormal")
    records = read_template_records(_template_csv(tmp_path / "t.csv", [(text, 1)]))
    report = apply_label_patch(records, load_label_patch(PATCH))
    assert (report["matched_entries"], report["labels_changed"]) == (1, 0)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not JSON"),
        ("[]", "non-empty JSON array"),
        ('[{"input": "x", "rectified": "weird"}]', "record 0 needs a string `input`"),
        ('[{"input": "x", "rectified": "normal"}, {"input": "x", "rectified": "abnormal"}]', "record 1 relabels 'x'"),
    ],
)
def test_bad_patch_files_fail_naming_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "patch.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"data.label_patch: {path}: .*{message}"):
        load_label_patch(path)
    with pytest.raises(FileNotFoundError, match="data.label_patch: .*missing.json: no such file"):
        load_label_patch(tmp_path / "missing.json")


def test_label_patch_is_for_template_sets_only():
    with pytest.raises(ValidationError, match="label_patch corrects template labels"):
        DataConfig(paths=["x.log"], format="bgl", label_patch=str(PATCH))
    cfg = DataConfig(paths=["t.csv"], format="templates", split="stratified", label_patch=str(PATCH))
    assert cfg.label_patch == str(PATCH)


def test_templates_smollm2_config_draft_loads():
    from cluster.config import load_config

    cfg = load_config(REPO / "configs" / "templates-smollm2.yaml")
    assert cfg.data.format == "templates" and cfg.data.split == "stratified"
    assert cfg.model.path == "smollm2-135m" and not cfg.model.build_tiny
    assert (REPO / cfg.data.label_patch).resolve() == PATCH


@pytest.mark.ray
def test_patched_labels_reach_the_prompt_rows_and_the_summary(tmp_path: Path, small_csv: Path):
    import ray

    from pipelines.building.dataset import build_prompt_dataset, load_examples

    init_ray(None, 2, log_to_driver=False)  # closed: every port on loopback, token auth
    try:
        cfg = DataConfig(
            paths=[str(small_csv)],
            format="templates",
            split="stratified",
            train_fraction=0.5,
            label_patch=str(PATCH),
            output_dir=str(tmp_path / "o"),
        )
        summary = build_prompt_dataset(cfg)
    finally:
        ray.shutdown()
    assert summary["label_patch"]["labels_changed"] == 4 and summary["label_patch"]["unmatched_entries"] == 177
    rows = load_examples(summary["paths"]["train"]) + load_examples(summary["paths"]["test"])
    assert sum(row["label"] == "anomalous" for row in rows) == 4 and len(rows) == 7
