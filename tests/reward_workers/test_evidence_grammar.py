"""Grounded decoding's grammar admits every honest teacher rationale and nothing the citation rule would not ground.

Checked with xgrammar (vLLM's structured-output backend) on a character-level vocabulary: the teachers' own
completions over every bundled BGL window and every label-patch template are accepted; the shortcut variants of
the reward tests (ranges, wrong numbers, header words, the pasted prompt) are refused; and completions drawn at
random through the grammar's token masks always parse, with every citation grounded by `contract.evidence`.
"""

from __future__ import annotations

import random

import pytest

xgr = pytest.importorskip("xgrammar")
torch = pytest.importorskip("torch")

from test_teacher_is_the_maximum import BGL, template_rows, variants  # noqa: E402

from contract.completion_format import parse_completion, render_completion  # noqa: E402
from contract.evidence import check_citations  # noqa: E402
from contract.evidence_grammar import grounded_grammar, quote_rules  # noqa: E402
from pipelines.prompts.domain_teacher import DomainTeacher  # noqa: E402
from pipelines.prompts.rows import rows_in_process  # noqa: E402
from pipelines.prompts.teacher import RuleTeacher  # noqa: E402

TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
# Printable ASCII, the tags, a few multi-character pieces (so a walk cites often), the end-of-sequence token.
VOCAB = [chr(c) for c in range(32, 127)] + ["\n", "…"] + TAGS + ['L1 "', 'L2 "', ' "', "; L", "</s>"]
STOP = len(VOCAB) - 1


@pytest.fixture(scope="module")
def compiler():
    info = xgr.TokenizerInfo(VOCAB, stop_token_ids=[STOP])
    return xgr.GrammarCompiler(info, cache_enabled=False)


def admits(compiler, prompt: str, completion: str) -> bool:
    matcher = xgr.GrammarMatcher(compiler.compile_grammar(grounded_grammar(prompt)))
    return matcher.accept_string(completion) and matcher.accept_token(STOP) and matcher.is_terminated()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    bgl = [row for teacher in (RuleTeacher(), DomainTeacher()) for row in rows_in_process(BGL, "bgl", 20, 400, teacher)]
    templates = [row for teacher in (RuleTeacher(), DomainTeacher()) for row in template_rows(teacher)]
    return bgl + templates


def test_every_teacher_rationale_is_admitted(compiler, rows) -> None:
    assert len(rows) > 500
    for row in rows:
        completion = render_completion(row["reference"], row["label"])
        assert admits(compiler, row["prompt"], completion), (row["id"], row["reference"])


def test_shortcut_variants_are_refused(compiler, rows) -> None:
    refused = 0
    for row in rows[::5]:
        for name, rationale in variants(row).items():
            if all(c.grounded for c in check_citations(rationale, row["prompt"])):
                continue  # a repeat, padding with a real quote, no citation: the rule grounds it, so may the grammar
            completion = render_completion(rationale, row["label"])
            assert not admits(compiler, row["prompt"], completion), (name, row["id"], rationale)
            refused += 1
    assert refused > 100


@pytest.mark.parametrize("seed", range(3))
def test_random_completions_through_the_grammar_are_grounded(compiler, rows, seed) -> None:
    rng = random.Random(seed)
    cited = 0
    for row in rng.sample(rows, 40):
        matcher = xgr.GrammarMatcher(compiler.compile_grammar(grounded_grammar(row["prompt"])))
        mask = xgr.allocate_token_bitmask(1, len(VOCAB))
        text = []
        for step in range(400):
            matcher.fill_next_token_bitmask(mask)
            bits = mask[0].tolist()
            allowed = [t for t in range(len(VOCAB)) if (bits[t // 32] >> (t % 32)) & 1]
            # Head for the end after a while, else prefer starting citations: every branch gets walked.
            closing = [t for t in allowed if VOCAB[t] in ("</think>", "<answer>", "</answer>", "</s>")]
            starts = [t for t in allowed if VOCAB[t] in ('L1 "', 'L2 "', "; L", "L", '"')]
            pool = closing if step > 150 and closing else starts if starts and rng.random() < 0.3 else allowed
            token = rng.choice(pool)
            assert matcher.accept_token(token)
            if token == STOP:
                break
            text.append(VOCAB[token])
        assert matcher.is_terminated(), "".join(text)
        completion = "".join(text)
        parsed = parse_completion(completion)
        assert parsed.well_formed, completion
        checked = check_citations(parsed.rationale, row["prompt"])
        assert all(c.grounded for c in checked), (completion, checked)
        assert parsed.rationale.count('"') == 2 * len(checked), completion  # every quote is a citation's
        cited += len(checked)
    assert cited > 20


def test_a_quote_starts_at_a_word_and_is_long_enough() -> None:
    rules, start = quote_rules("q", "total of <NUM> ddr error(s) detected")
    assert start is not None and len(rules) == len("total of <NUM> ddr error(s) detected")
    # The shortest meaningful piece from each word start (12 characters, or two 3+ character words), then any more.
    assert (
        start
        == '("total of <NU" q_12? | "of <NUM> ddr" q_18? | "<NUM> ddr" q_18? | "ddr err" q_22? | "error(s) det" q_31?)'
    )
    assert rules[12] == 'q_12 ::= "M" q_13?' and rules[-1] == 'q_35 ::= "d"'
    assert quote_rules("q", "ok")[1] is None  # nothing long enough, and no word of 3+ characters
    assert quote_rules("q", "ciod")[1] == '("ciod")'  # the whole of a short line with a word


def test_a_prompt_with_nothing_quotable_leaves_free_text_only(compiler) -> None:
    prompt = "L1: 48\nL2: 16"
    assert "citation" not in grounded_grammar(prompt)
    # Free text stays on the rationale's line and opens no tag or special token.
    assert not admits(compiler, prompt, "<think>Normal.\nL3: x</think><answer>normal</answer>")
    assert not admits(compiler, prompt, "<think>Normal.<|assistant|></think><answer>normal</answer>")
    assert admits(compiler, prompt, "<think>Normal: L1 is a counter value.</think><answer>normal</answer>")
    assert not admits(compiler, prompt, '<think>L1 "48"</think><answer>normal</answer>')
