"""The one step from chat messages to token ids: generation prompt, fast mode's `<answer>` prefill, no mutation."""

from __future__ import annotations

import pytest

from contract.chat_tokens import FAST_PREFILL, chat_token_ids, prefill_for, with_prefill
from contract.completion_format import ANSWER_OPEN

CHAT = [{"role": "system", "content": "s"}, {"role": "user", "content": "L1 KERNEL INFO: job started"}]


class RecordingTokenizer:
    """Duck-typed tokenizer: renders the template call it got, one id per character."""

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, **kwargs):
        self.calls.append((messages, kwargs))
        return "|".join(m["content"] for m in messages) + ("<gen>" if kwargs.get("add_generation_prompt") else "")

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False  # the template already wrote every special token
        return {"input_ids": [ord(c) for c in text]}


def test_prefill_is_the_answer_tag_in_fast_mode_only():
    assert FAST_PREFILL == ANSWER_OPEN == prefill_for(True)
    assert prefill_for(False) == ""


def test_with_prefill_copies_and_opens_the_assistant_turn():
    chat = with_prefill(CHAT, FAST_PREFILL)
    assert chat[-1] == {"role": "assistant", "content": ANSWER_OPEN} and len(CHAT) == 2
    assert with_prefill(CHAT, "") == CHAT


def test_generation_prompt_without_prefill_and_continuation_with_it():
    tokenizer = RecordingTokenizer()
    ids = chat_token_ids(tokenizer, CHAT)
    assert "".join(map(chr, ids)).endswith("<gen>")
    assert tokenizer.calls[-1][1] == {"add_generation_prompt": True, "tokenize": False}
    ids = chat_token_ids(tokenizer, CHAT, FAST_PREFILL)
    assert "".join(map(chr, ids)).endswith(ANSWER_OPEN)
    assert tokenizer.calls[-1][1] == {"continue_final_message": True, "tokenize": False}
    assert len(CHAT) == 2  # the caller's chat is never changed


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT
    from rl_actors.tiny_model import train_tokenizer

    return train_tokenizer([SYSTEM_PROMPT, FAST_SYSTEM_PROMPT, "L1 KERNEL INFO: job started normal anomalous"], 300)


def test_ids_match_the_template_rendered_and_tokenized_directly(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert chat_token_ids(tiny_tokenizer, CHAT) == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    fast = chat_token_ids(tiny_tokenizer, CHAT, FAST_PREFILL)
    assert tiny_tokenizer.decode(fast).endswith(FAST_PREFILL)
