"""The pure parts of eval inference: adapter versions, fast-mode prompts with the `<answer>` prefill, parsing."""

from __future__ import annotations

import pytest

from contract.adapter_store import adapter_version
from evaluation.inference import FAST_PREFILL, encode_eval_prompt, full_completion
from evaluation.predictions import predict
from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT


def test_adapter_version(tmp_path):
    (tmp_path / "adapters" / "v7").mkdir(parents=True)
    latest = {"version": 9, "path": str(tmp_path / "adapters" / "v7")}
    assert adapter_version(tmp_path / "adapters" / "v7", latest) == 9
    assert adapter_version(tmp_path / "adapters" / "v7") == 7
    assert adapter_version(tmp_path / "my-adapter") == 0


def test_fast_completion_keeps_the_prefill_and_parses(normal_row):
    text = full_completion("fast", "anomalous</answer>")
    assert text == "<answer>anomalous</answer>"
    assert predict(normal_row, "fast", text).verdict == "anomalous"
    unclosed = predict(normal_row, "fast", full_completion("fast", "anomalous and more"))
    assert unclosed.verdict is None and not unclosed.well_formed  # budget ran out: counted wrong
    assert full_completion("reason", "<think>x</think>") == "<think>x</think>"


@pytest.fixture(scope="module")
def tokenizer():
    from rl_actors.tiny_model import train_tokenizer

    return train_tokenizer([SYSTEM_PROMPT, FAST_SYSTEM_PROMPT, "L1 KERNEL INFO: job started normal anomalous"], 300)


def test_fast_prompt_ends_with_the_prefill(tokenizer):
    reason = tokenizer.decode(encode_eval_prompt(tokenizer, "L1 KERNEL INFO: job started", "reason"))
    fast = tokenizer.decode(encode_eval_prompt(tokenizer, "L1 KERNEL INFO: job started", "fast"))
    assert SYSTEM_PROMPT in reason and not reason.rstrip().endswith(FAST_PREFILL)
    assert FAST_SYSTEM_PROMPT in fast and fast.endswith(FAST_PREFILL)
    # Grounded mode asks what reasoning mode asks; only its decoding differs.
    assert encode_eval_prompt(tokenizer, "L1 KERNEL INFO: job started", "grounded") == encode_eval_prompt(
        tokenizer, "L1 KERNEL INFO: job started", "reason"
    )
    with pytest.raises(ValueError, match="mode"):
        encode_eval_prompt(tokenizer, "x", "slow")


def test_budget_forcing_prompt_continues_the_closed_rationale(tokenizer):
    closed = "<think>job started</think><answer>"
    ids = encode_eval_prompt(tokenizer, "L1 KERNEL INFO: job started", "grounded", prefill=closed)
    reason = encode_eval_prompt(tokenizer, "L1 KERNEL INFO: job started", "reason")
    text = tokenizer.decode(ids)
    # the reasoning chat, the assistant turn holding the closed rationale, open where the verdict goes
    assert SYSTEM_PROMPT in text and text.endswith(closed) and ids[: len(reason)] == reason
