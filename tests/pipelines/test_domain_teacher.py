"""The domain teacher: kinds of fault, handled and routine conditions, stances that never mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.prompts.domain_teacher import DomainTeacher, contradicts, fault_cue, handled_cue, rationale_stance
from pipelines.prompts.render import render_window
from pipelines.prompts.rows import rows_in_process

REPO = Path(__file__).resolve().parents[2]
PATCH = REPO / "data" / "rationanomaly" / "rationanomaly_anomaly_patch.json"


def template(text: str, label: str) -> str:
    line = {"label": "A" if label == "anomalous" else "-", "level": None, "component": None}
    line |= {"content": text, "template": text, "template_id": 1}
    return DomainTeacher().rationale([line], label, render_window([line], 160))


def test_a_fault_is_named_by_its_kind_and_a_handled_one_by_why():
    assert template("mmcs_server exited abnormally due to signal: Segmentation fault", "anomalous").startswith(
        'Fault: L1 "'
    )
    assert "a crash" in template("mmcs_server exited abnormally due to signal: Segmentation fault", "anomalous")
    assert "lost communication" in template("connect to <*>: Connection timed out", "anomalous")
    handled = template("instruction cache parity error corrected", "normal")
    assert handled.startswith("Normal: ") and "corrected itself" in handled
    assert "register" in template("r20=0x00482ae8 r21=0x00000000", "normal")
    assert fault_cue("ddr: Unable to steer rank")[0].name == "resource" and handled_cue("retrying in 5 s")


def test_stances_are_read_outside_quotes_and_a_mix_is_a_contradiction():
    assert rationale_stance('Fault: L1 "normal operation resumed" shows a crash; so anomalous.') == {"anomalous"}
    assert rationale_stance('Normal: L1 "fatal error" names a problem the system corrected itself') == {"normal"}
    mixed = 'L15 "Receiving block <BLK>" These are routine events, so the session is anomalous.'
    assert rationale_stance(mixed) == {"normal", "anomalous"} and contradicts(mixed, "anomalous")
    assert not contradicts(
        'Routine events: L1 "boot ok". These events are routine, so the session is normal.', "normal"
    )
    assert not contradicts("anything", None)


@pytest.mark.parametrize("label", ["normal", "anomalous"])
def test_no_domain_rationale_contradicts_its_label(label):
    for record in json.loads(PATCH.read_text(encoding="utf-8")):
        assert not contradicts(template(record["input"], label), label)
    for row in rows_in_process(REPO / "data" / "bgl" / "BGL_2k.log", "bgl", 20, 400, DomainTeacher()):
        assert not contradicts(row["reference"], row["label"]), row["reference"]
        assert row["reference"].startswith("Fault: " if row["label"] == "anomalous" else "Normal: ")
