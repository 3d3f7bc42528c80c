"""Citations and prompt lines: parsing and the grounded check."""

from __future__ import annotations

from reward_samples import PROMPT

from reward_workers.evidence import (
    Citation,
    check_evidence,
    extract_citations,
    index_prompt_lines,
    is_grounded,
    is_meaningful_quote,
)


def test_index_prompt_lines_expands_collapsed_runs() -> None:
    lines = index_prompt_lines(PROMPT)
    assert sorted(lines) == list(range(1, 13))
    assert lines[3] == ["data TLB error interrupt"]  # the header (component, level) is not quotable text
    assert lines[4] == lines[9] == ["CE sym 2, at 0x0b85eee0, mask 0x05"]
    assert lines[10] == [
        "ciod: failed to read message prefix on control stream (CioStream socket to 172.16.96.116:33569"
    ]


def test_index_prompt_lines_reads_groups_at_several_places() -> None:
    prompt = "L1-L3,L7,L9-L10 (x6) dfs.DataNode INFO: Receiving block <BLK> src: /<IP> dest: /<IP>\nL4: plain text here"
    lines = index_prompt_lines(prompt)
    assert sorted(lines) == [1, 2, 3, 4, 7, 9, 10]
    assert lines[9] == ["Receiving block <BLK> src: /<IP> dest: /<IP>"]
    assert lines[4] == ["plain text here"]
    assert index_prompt_lines("... (12 more lines in 3 templates not shown)") == {}


def test_instruction_text_is_not_a_line() -> None:
    assert 0 not in index_prompt_lines(PROMPT)
    assert index_prompt_lines('Cite evidence as L<n> "<text>".') == {}


def test_extract_citations_forms() -> None:
    text = (
        'L3 "data TLB" then L4-L9 "CE sym 2" and L4-L9 (x6) "mask 0x05", also L12: "ASSERT", not BGL3 "x",'
        ' and L1-L3,L7 (x4) "Receiving block"'
    )
    assert extract_citations(text) == [
        Citation(3, 3, "data TLB"),
        Citation(4, 9, "CE sym 2"),
        Citation(4, 9, "mask 0x05"),
        Citation(12, 12, "ASSERT"),
        Citation(1, 3, "Receiving block"),
    ]


def test_grounded_needs_existing_line_and_verbatim_quote_of_that_line() -> None:
    lines = index_prompt_lines(PROMPT)
    assert is_grounded(Citation(3, 3, "data TLB error interrupt"), lines)
    assert is_grounded(Citation(6, 6, "CE sym 2, at"), lines)  # inside the collapsed L4-L9 run
    assert not is_grounded(Citation(3, 3, "segmentation fault"), lines)  # invented text
    assert not is_grounded(Citation(2, 2, "data TLB error interrupt"), lines)  # real text, wrong line
    assert not is_grounded(Citation(42, 42, "data TLB"), lines)  # no such line
    assert is_grounded(Citation(4, 9, "CE sym 2, at"), lines)  # the collapsed run cited as a range
    assert not is_grounded(Citation(1, 12, "data TLB error interrupt"), lines)  # a span must start at the quote
    assert not is_grounded(Citation(3, 3, "TLB"), lines)  # too short to be evidence
    assert not is_grounded(Citation(3, 3, "KERNEL FATAL"), lines)  # header words are not the message
    assert not is_grounded(Citation(1, 10**12, "instruction cache"), lines)  # absurd range: rejected, not enumerated


def test_meaningful_quotes() -> None:
    assert is_meaningful_quote("data TLB error interrupt")
    assert is_meaningful_quote("CE sym 2, at")  # 12 characters
    assert is_meaningful_quote("ddr error")  # two words
    assert not is_meaningful_quote("KERNEL")
    assert not is_meaningful_quote("<*> <*> 2")


def test_whitespace_differences_do_not_matter() -> None:
    lines = index_prompt_lines(PROMPT)
    assert is_grounded(extract_citations('L3 "data  TLB\terror interrupt "')[0], lines)


def test_check_evidence_counts() -> None:
    text = 'L3 "data TLB error interrupt", again L3 "data TLB error interrupt", and L42 "disk on fire"'
    check = check_evidence(text, PROMPT, anomaly_lines=(3,))
    assert (check.total, check.grounded, check.ungrounded, check.grounded_anomaly) == (3, 1, 1, 1)
    routine = check_evidence('L1 "instruction cache parity error"', PROMPT, anomaly_lines=(3,))
    assert (routine.grounded, routine.grounded_anomaly) == (1, 0)
