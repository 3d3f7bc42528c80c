"""No silent truncation: prompts fitted to the served context with the model's tokenizer, cuts reported by line."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pipelines.prompts.render import shown_line_numbers
from serving.detect import (
    AdapterInfo,
    DetectLimits,
    chat_overhead_tokens,
    detect_response,
    parse_detect_request,
    plan_detection,
    prompt_token_budget,
    token_counter,
)

ADAPTER = AdapterInfo(name="logrl-detector", version="v1", path="/adapters/v1", rank=8)
MAX_MODEL_LEN, MAX_NEW_TOKENS = 768, 24
TLB = "RAS KERNEL FATAL data TLB error interrupt"


def _session(bgl_raw_lines: list[str]) -> list[str]:
    """12 distinct routine lines of ~250 characters, then 5 fatal TLB lines (the issue's reproduction)."""
    routine = []
    for n, line in enumerate(bgl_raw_lines[:12]):
        words = " ".join(f"w{i}x{(i * 7919 + n * 104729) % 1000}" for i in range(18))
        routine.append(f"{line} {words} {n}")
    stamp = "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01"
    return routine + [f"{stamp} {TLB}"] * 5


@pytest.fixture
def served_limits(tiny_tokenizer) -> DetectLimits:
    budget = prompt_token_budget(MAX_MODEL_LEN, MAX_NEW_TOKENS, chat_overhead_tokens(tiny_tokenizer), 640)
    return DetectLimits(
        max_request_lines=2000,
        max_line_chars=8192,
        max_prompt_tokens=budget,
        max_new_tokens=MAX_NEW_TOKENS,
        fast_max_new_tokens=4,
    )


@pytest.mark.parametrize("fast", [False, True])
def test_fatal_lines_are_kept_the_prompt_fits_and_the_cut_is_reported(
    fast, bgl_raw_lines, miner, tiny_tokenizer, served_limits
):
    lines = _session(bgl_raw_lines)
    assert all(len(line) >= 200 for line in lines[:12])
    request = parse_detect_request({"lines": lines, "fast": fast}, served_limits)
    plan = plan_detection(request, miner, "bgl", served_limits, token_counter(tiny_tokenizer))
    shown = shown_line_numbers(plan.messages[1]["content"].split("\n", 1)[1])
    assert set(range(13, 18)) <= shown  # the TLB group is in the prompt
    assert "data TLB error interrupt" in plan.messages[1]["content"]
    prompt_ids = tiny_tokenizer.apply_chat_template(
        plan.messages, tokenize=True, add_generation_prompt=not fast, continue_final_message=fast
    )
    prompt_ids = prompt_ids["input_ids"] if isinstance(prompt_ids, Mapping) else prompt_ids
    assert len(prompt_ids) > served_limits.max_prompt_tokens // 2  # a real count, not a BatchEncoding's keys
    assert len(prompt_ids) + plan.sampling["max_completion_tokens"] <= MAX_MODEL_LEN  # vLLM will not refuse it
    body = detect_response("<answer>anomalous</answer>", plan, ADAPTER, 1, served_limits)
    assert body["truncated"] is True and body["omitted_lines"]
    assert set(body["omitted_lines"]) == set(range(1, 18)) - shown and set(body["omitted_lines"]) <= set(range(1, 13))


def test_a_request_that_fits_is_not_truncated(bgl_raw_lines, miner, tiny_tokenizer, served_limits):
    request = parse_detect_request({"lines": bgl_raw_lines[:20]}, served_limits)
    plan = plan_detection(request, miner, "bgl", served_limits, token_counter(tiny_tokenizer))
    body = detect_response("<answer>normal</answer>", plan, ADAPTER, 1, served_limits)
    assert body["truncated"] is False and body["omitted_lines"] == []


def test_chat_overhead_is_counted_in_tokens(tiny_tokenizer):
    assert 40 < chat_overhead_tokens(tiny_tokenizer) < 400  # the system prompt alone is dozens of tokens


def test_budget_is_the_context_minus_completion_and_chat():
    assert prompt_token_budget(768, 24, 100) == 644 - 8 - 644 // 50
    assert prompt_token_budget(768, 24, 100, configured_max=300) == 300
    with pytest.raises(ValueError, match="raise max_model_len"):
        prompt_token_budget(128, 64, 60)
