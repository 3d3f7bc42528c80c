"""The cascade's classical first stage without Ray: fitting, judging, saving, and its use by /detect and the tail."""

from __future__ import annotations

import json

import pytest

from pipelines.templates.miner import UNSEEN_ID
from serving.cascade import ANOMALOUS, MODEL, NORMAL, ClassicalStage, LinesStage, fit_classical_stage


def _row(ids, label="normal", carriers=()):
    return {"template_ids": ids, "label": label, "anomaly_lines": list(carriers)}


TRAIN = [_row([1, 1, 2, 3]) for _ in range(4)] + [
    _row([1, 2, 9], "anomalous", carriers=[3]),  # 9 only ever carries an anomaly
    _row([1, 4, 4], "anomalous", carriers=[2]),  # 4: once on an anomaly line, once beside it
]


def test_a_window_of_common_templates_is_normal_and_anything_else_goes_to_the_model():
    stage = fit_classical_stage(TRAIN, min_normal_lines=3, max_anomaly_share=0.05)
    assert stage.judge([1, 2, 3, 1]) == (NORMAL, "every template is common in normal training windows")
    cases = {
        (1, None): "L2 is not a well-formed log line",
        (1, UNSEEN_ID): "L2 has a template never seen in training",
        (1, 4): "L2's template carried anomalies in 1 training lines",
        (1, 7): "L2's template is rare (0 normal training lines)",
        (1, 1, 1): "L1's template occurs 3 times, more than in any normal window",
        (2, 9): "L2's template occurred only on anomaly lines in training",
    }
    for ids, reason in cases.items():
        assert stage.judge(list(ids)) == (MODEL, reason), ids
    decisive = ClassicalStage(**{**stage.__dict__, "decide_known_anomalies": True})
    assert decisive.judge([2, 9]).decision == ANOMALOUS
    assert decisive.judge([9, 7]).decision == MODEL  # a rare template still needs the model


def test_the_stage_round_trips_through_its_file(tmp_path):
    stage = fit_classical_stage(TRAIN)
    loaded = ClassicalStage.load(stage.save(tmp_path / "classical_stage.json"))
    assert loaded == stage and all(isinstance(key, int) for key in loaded.normal_lines)
    assert ClassicalStage.load(tmp_path / "classical_stage.json", decide_known_anomalies=True).decide_known_anomalies


@pytest.fixture(scope="module")
def bgl_stage(tmp_path_factory):
    """The stage and miner a data run would save, fit on the bundled BGL sample's first 70 windows."""
    from pipelines.prompts.rows import PromptSettings, rows_in_process
    from pipelines.templates.miner import LogTemplateMiner

    folder = tmp_path_factory.mktemp("data")
    rows = rows_in_process("data/bgl/BGL_2k.log", "bgl", 20, 400)
    fit_classical_stage(rows[:70]).save(folder / "classical_stage.json")
    lines = [
        line.split(None, 1)[1] for line in open("data/bgl/BGL_2k.log", encoding="utf-8").read().split("\n") if line
    ]
    from pipelines.reading.log_formats import parse_line

    LogTemplateMiner.fit(parse_line(line, "bgl")["content"] for line in lines).save(folder / "miner_state.json")
    PromptSettings("bgl", "fixed", 20, 400, "miner_state.json").save(folder)
    return folder, lines


def test_the_tails_stage_judges_raw_lines_as_detect_does(bgl_stage):
    folder, lines = bgl_stage
    stage = LinesStage.from_data_dir(folder)
    train_windows = [lines[i : i + 20] for i in range(0, 1400, 20)]
    decisions = [stage.judge(window).decision for window in train_windows]
    assert NORMAL in decisions and MODEL in decisions
    assert stage.judge(["not a log line at all"]) == (MODEL, "L1 is not a well-formed log line")
    unseen = lines[0].replace("instruction cache parity error corrected", "zq brand new zx failure mode")
    assert stage.judge([unseen]).reason.endswith(("never seen in training", "rare (0 normal training lines)"))
    (folder / "classical_stage.json").rename(folder / "moved.json")
    try:
        with pytest.raises(FileNotFoundError, match="no classical stage"):
            LinesStage.from_data_dir(folder)
    finally:
        (folder / "moved.json").rename(folder / "classical_stage.json")


def test_the_tails_stage_reads_format_regex_with_the_data_regex_saved_beside_the_miner(tmp_path, capsys):
    from dataclasses import asdict

    from cluster import cli
    from pipelines.prompts.rows import PromptSettings, rows_in_process
    from pipelines.reading.log_formats import parse_line
    from pipelines.reading.regex_format import RegexFormat
    from pipelines.templates.miner import LogTemplateMiner

    regex = RegexFormat(r"(?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<content>.*)", anomaly=r"\bERROR\b")
    lines = [f"ERROR [db] connection {i} refused" if i % 30 == 4 else f"INFO [web] GET /{i} 200" for i in range(90)]
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    fit_classical_stage(rows_in_process(log, "regex", 10, 400, regex=regex)).save(tmp_path / "classical_stage.json")
    LogTemplateMiner.fit(parse_line(text, "regex", regex)["content"] for text in lines).save(
        tmp_path / "miner_state.json"
    )
    PromptSettings("regex", "fixed", 10, 400, "miner_state.json", regex=asdict(regex)).save(tmp_path)
    stage = LinesStage.from_data_dir(tmp_path)
    assert None not in stage.template_ids(lines[:10]) and stage.template_ids(["no header"]) == [None]
    assert stage.judge(lines[10:13]).decision == NORMAL, stage.judge(lines[10:13])

    PromptSettings("regex", "fixed", 10, 400, "miner_state.json").save(tmp_path)  # a folder without data.regex
    with pytest.raises(ValueError, match=r"format regex needs its line regex: set data\.regex"):
        LinesStage.from_data_dir(tmp_path)
    assert cli.main(["tail", str(log), "--no-follow", "--cascade", str(tmp_path), "--url", "http://127.0.0.1:9"]) == 2
    assert "tail --cascade: format regex needs its line regex: set data.regex" in capsys.readouterr().err


def test_detect_answers_from_the_first_stage_or_asks_the_model(bgl_stage, miner, limits):
    from serving.detect import AdapterInfo, DetectRequest, classical_response, detect_response, plan_detection

    folder, lines = bgl_stage
    adapter = AdapterInfo("logrl-detector", "v1", "/a/v1", 8)
    plan = plan_detection(DetectRequest(lines=lines[:3]), miner, "bgl", limits)
    assert len(plan.rendered.template_ids) == 3 and all(isinstance(i, int) for i in plan.rendered.template_ids)
    decided = classical_response(ClassicalStage().judge([]), plan, adapter, 1.5, limits)
    assert (decided["verdict"], decided["stage"], decided["score"]) == ("normal", "classical", None)
    assert decided["rationale"].startswith("classical stage: ") and decided["well_formed"] is True
    asked = detect_response("<think>x</think><answer>anomalous</answer>", plan, adapter, 9, limits, None, "rare")
    assert (asked["stage"], asked["stage_reason"]) == ("model", "rare")
    json.dumps(decided)


def test_the_fast_masker_masks_exactly_as_the_miner_does(bgl_stage):
    import random
    import re

    from pipelines.reading.log_formats import parse_line
    from pipelines.templates.miner import LogTemplateMiner
    from serving.cascade import FastMasker

    folder, lines = bgl_stage
    miner = LogTemplateMiner.load(folder / "miner_state.json")
    fast = FastMasker(miner.settings["masking"])
    rng = random.Random(3)
    contents = [parse_line(line, "bgl")["content"] for line in lines]
    contents += [re.sub(r"\d", lambda _: str(rng.randrange(10)), text) for text in contents]
    contents += [
        "blk_-123 from 10.0.0.1:50010 to 0xdeadBEEF at 00:1a:2b:3c:4d:5e, R02-M1-N0-C:J12-U11 +3.5 cafe1234",
        "no digits at all here", "", "a.b:c 0X1F R12-M0 blk_ 1.2.3", "deadbeef99 12345678 9.9.9.9.9",
    ]  # fmt: skip
    assert [fast(text) for text in contents] == [miner.mask(text) for text in contents]
