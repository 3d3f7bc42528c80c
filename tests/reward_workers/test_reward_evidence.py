"""Citations and prompt lines: parsing and the grounded check."""

from __future__ import annotations

from reward_samples import PROMPT

from contract.evidence import (
    Citation,
    anomaly_groups,
    check_citations,
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
        ' and L1-L3,L7 (x4) "Receiving block", L4 - 9 "CE sym"'
    )
    assert extract_citations(text) == [
        Citation(3, 3, "data TLB", "L3"),
        Citation(4, 9, "CE sym 2", "L4-L9"),
        Citation(4, 9, "mask 0x05", "L4-L9"),
        Citation(12, 12, "ASSERT", "L12"),
        Citation(1, 3, "Receiving block", "L1-L3,L7"),
        Citation(4, 9, "CE sym", "L4-L9"),
    ]


def grounded(text: str, prompt: str = PROMPT) -> bool:
    return is_grounded(extract_citations(text)[0], prompt)


def test_a_quote_must_be_on_the_line_or_the_exact_group_it_names() -> None:
    assert grounded('L3 "data TLB error interrupt"')
    assert grounded('L6 "CE sym 2, at"')  # one line of the collapsed L4-L9 run: its text is on that line
    assert grounded('L4-L9 "CE sym 2, at"') and grounded('L4-L9 (x6) "CE sym 2, at"')  # the run as printed
    assert not grounded('L3 "segmentation fault"')  # invented text
    assert not grounded('L2 "data TLB error interrupt"')  # real text, wrong line
    assert not grounded('L42 "data TLB"')  # no such line
    # A range names a line only when the prompt prints exactly that group: checking its first line is not enough.
    assert not grounded('L3-L9 "data TLB error interrupt"') and not grounded('L1-L12 "instruction cache parity"')
    assert not grounded('L4-L8 "CE sym 2, at"') and not grounded('L4-L10 "CE sym 2, at"')
    assert not grounded('L3 "TLB"')  # too short to be evidence
    assert not grounded('L3 "KERNEL FATAL"')  # header words are not the message
    assert not grounded('L1-L1000000000000 "instruction cache"')  # absurd range: rejected, not enumerated
    several = "L1-L3,L7 (x4) dfs.DataNode INFO: Receiving block <BLK>\nL4: plain text here"
    assert grounded('L1-L3,L7 "Receiving block <BLK>"', several) and grounded('L7 "Receiving block <BLK>"', several)
    assert not grounded('L1-L3 "Receiving block <BLK>"', several) and not grounded('L1-L7 "Receiving block"', several)


def test_anomaly_credit_only_for_a_grounded_quote_on_a_line_that_carries_it() -> None:
    prompt = "L1-L3 (x3) KERNEL INFO: CE sym 2, at 0x0b85eee0\nL4 KERNEL FATAL: data TLB error interrupt\n"
    checks = check_citations('L2 "CE sym 2, at 0x0b" L1-L3 "CE sym 2, at 0x0b" L4 "data TLB error"', prompt, (2, 4))
    assert [(c.grounded, c.carries_anomaly) for c in checks] == [(True, True), (True, True), (True, True)]
    checks = check_citations('L1 "CE sym 2, at 0x0b" L1-L4 "data TLB error" L3 "data TLB error"', prompt, (2, 4))
    assert [(c.grounded, c.carries_anomaly) for c in checks] == [(True, False), (False, False), (False, False)]
    assert anomaly_groups(prompt, (2, 4)) == 2 and anomaly_groups(prompt, (4,)) == 1 and anomaly_groups(prompt, ()) == 0


def test_meaningful_quotes() -> None:
    assert is_meaningful_quote("data TLB error interrupt")
    assert is_meaningful_quote("CE sym 2, at")  # 12 characters
    assert is_meaningful_quote("ddr error")  # two words
    assert not is_meaningful_quote("KERNEL")
    assert not is_meaningful_quote("<*> <*> 2")


def test_whitespace_differences_do_not_matter() -> None:
    assert grounded('L3 "data  TLB\terror interrupt "')


def test_check_evidence_counts_distinct_groups() -> None:
    text = 'L3 "data TLB error interrupt", again L3 "data TLB error interrupt", and L42 "disk on fire"'
    check = check_evidence(text, PROMPT, anomaly_lines=(3,))
    assert (check.total, check.grounded, check.ungrounded, check.grounded_anomaly) == (3, 1, 1, 1)
    routine = check_evidence('L1 "instruction cache parity error"', PROMPT, anomaly_lines=(3,))
    assert (routine.grounded, routine.grounded_anomaly) == (1, 0)
    one_group = check_evidence('L4 "CE sym 2, at" L5 "CE sym 2, at" L4-L9 "mask 0x05"', PROMPT, anomaly_lines=(5,))
    assert (one_group.total, one_group.grounded, one_group.grounded_anomaly) == (3, 1, 1)  # three cites, one group
