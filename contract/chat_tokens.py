"""Chat messages to the token ids a model is given: one function for training, eval and serving's budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contract.completion_format import ANSWER_OPEN

# Fast mode (R-Log's answer-first variant) prefills the assistant turn with `<answer>`: the verdict is the very
# next token, whatever a small model would otherwise start with.
FAST_PREFILL = ANSWER_OPEN


def prefill_for(fast: bool) -> str:
    """The start of the assistant turn written for the model: `<answer>` in fast mode, nothing otherwise."""
    return FAST_PREFILL if fast else ""


def with_prefill(messages: Sequence[Mapping[str, Any]], prefill: str) -> list[dict]:
    """The chat with the assistant turn opened by `prefill` (a copy; unchanged when `prefill` is empty)."""
    chat = [dict(message) for message in messages]
    if prefill:
        chat.append({"role": "assistant", "content": prefill})
    return chat


def chat_token_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]], prefill: str = "") -> list[int]:
    """Token ids of a chat prompt ending where the model writes next (the same ids vLLM is given).

    Without `prefill` the chat ends with the assistant turn opener; with it, inside an assistant turn that already
    holds `prefill` (fast mode: `FAST_PREFILL`). `tokenizer` is a transformers tokenizer with a chat template.
    """
    if prefill:
        text = tokenizer.apply_chat_template(
            with_prefill(messages, prefill), continue_final_message=True, tokenize=False
        )
    else:
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
