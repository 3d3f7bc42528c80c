"""Faithfulness: citations checked against the prompt's message text and the rows' anomaly lines."""

from __future__ import annotations

import pytest

from contract.completion_format import render_completion
from evaluation.metrics import evidence_recall, faithful_share, score_predictions
from evaluation.predictions import check_citations, predict

GOOD = 'L4 "data TLB error interrupt" is fatal.'
ON_NORMAL_LINE = 'L1 "instruction cache parity error corrected" only.'
IN_GROUP = 'L7 "instruction cache parity error corrected" and L5 "failed to read message prefix" matter.'
INVENTED = 'L4 "disk failure imminent on node" is fatal.'
WRONG_LINE = 'L2 "data TLB error interrupt" is fatal.'
TOO_SHORT = 'L4 "TLB" is fatal.'


def test_citations_are_grounded_in_message_text(prompt):
    (c,) = check_citations(GOOD, prompt, [4, 5, 6])
    assert c.lines == (4, 4) and c.quote == "data TLB error interrupt"
    assert c.grounded and c.carries_anomaly
    first, second = check_citations(IN_GROUP, prompt, [4, 5, 6])
    assert first.grounded and not first.carries_anomaly  # L7 is shown in the `L1-L3,L7` group
    assert second.grounded and second.carries_anomaly
    for rationale in (INVENTED, WRONG_LINE, TOO_SHORT):
        assert [c.grounded for c in check_citations(rationale, prompt, [4])] == [False], rationale
    assert check_citations("nothing cited", prompt, [4]) == []


def _pred(row, rationale, verdict, **kw):
    return predict(row, "reason", render_completion(rationale, verdict), **kw)


def test_faithful_share_needs_a_citation_and_all_grounded(anomalous_row, normal_row):
    preds = [
        _pred(anomalous_row, GOOD, "anomalous"),  # faithful
        _pred(normal_row, ON_NORMAL_LINE, "normal"),  # faithful
        _pred(anomalous_row, GOOD + " " + INVENTED, "anomalous"),  # one ungrounded citation: not faithful
        _pred(normal_row, "all routine, nothing to cite", "normal"),  # cites nothing: not faithful
        predict(normal_row, "reason", "<think>L1 unclosed"),  # malformed: not judged
        predict(normal_row, "fast", "<answer>normal</answer>"),  # no rationale: not judged
    ]
    share, judged = faithful_share(preds)
    assert judged == 4
    assert share == pytest.approx(0.5)


def test_evidence_recall_counts_true_positives_citing_an_anomaly_line(anomalous_row, normal_row):
    no_lines = dict(anomalous_row, id="w3", anomaly_lines=[])
    hidden = dict(anomalous_row, id="w4", anomaly_lines=[12])  # the prompt does not show line 12
    preds = [
        _pred(anomalous_row, GOOD, "anomalous"),  # TP citing L4 grounded: found
        _pred(anomalous_row, ON_NORMAL_LINE, "anomalous"),  # TP citing only a normal line: missed
        _pred(anomalous_row, INVENTED, "anomalous"),  # TP citing L4 with an invented quote: missed
        _pred(no_lines, GOOD, "anomalous"),  # anomaly lines unknown: not judged
        _pred(hidden, GOOD, "anomalous"),  # anomaly line not shown, so it cannot be cited: not judged
        _pred(anomalous_row, GOOD, "normal"),  # FN: not judged
        _pred(normal_row, GOOD, "anomalous"),  # FP: not judged
    ]
    recall, judged = evidence_recall(preds)
    assert judged == 3
    assert recall == pytest.approx(1 / 3)


def test_arm_scores_include_well_formed_and_faithfulness(anomalous_row, normal_row):
    preds = [
        _pred(anomalous_row, GOOD, "anomalous"),
        predict(normal_row, "reason", "no tags at all"),
    ]
    m = score_predictions(preds, elapsed_s=2.0)
    assert (m.tp, m.fp, m.invalid) == (1, 1, 1)  # the unparsable normal row counts as a false alarm
    assert m.well_formed == pytest.approx(0.5)
    assert m.faithful_share == 1.0 and m.rationales == 1
    assert m.evidence_recall == 1.0 and m.evidence_rows == 1
    assert m.samples_per_s == pytest.approx(1.0)


def test_answer_only_arm_has_no_faithfulness(anomalous_row):
    m = score_predictions([predict(anomalous_row, "fast", "<answer>anomalous</answer>")])
    assert m.tp == 1 and m.well_formed == 1.0
    assert m.faithful_share is None and m.evidence_recall is None


def test_faithfulness_of_anomalous_verdicts_is_reported_apart():
    from evaluation.metrics import faithful_share, score_predictions
    from evaluation.predictions import predict

    prompt = "L1 KERNEL INFO: generating core files\nL2 KERNEL FATAL: data TLB error interrupt"
    normal = {"id": "n", "prompt": prompt, "label": "normal", "anomaly_lines": []}
    anomalous = {"id": "a", "prompt": prompt, "label": "anomalous", "anomaly_lines": [2]}
    preds = [
        predict(normal, "reason", '<think>L1 "generating core files" is routine.</think><answer>normal</answer>'),
        predict(
            anomalous, "reason", '<think>L1 "data TLB error interrupt" is fatal.</think><answer>anomalous</answer>'
        ),
    ]
    assert faithful_share(preds) == (0.5, 2)
    assert faithful_share(preds, "anomalous") == (0.0, 1)  # right text, wrong line number
    scores = score_predictions(preds)
    assert (scores.faithful_anomalous, scores.anomalous_rationales) == (0.0, 1)
