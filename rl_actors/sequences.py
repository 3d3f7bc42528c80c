"""Token-level plumbing shared by SFT and GRPO: chat encoding, padding, per-token logprobs."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a chat prompt ending with the assistant turn opener (same ids vLLM is given)."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


_TURN_PROBE = "logrl-assistant-turn-probe"


def assistant_end_id(tokenizer) -> int:
    """The token the chat template closes an assistant turn with (SmolLM2: `<|im_end|>`), else EOS.

    Completions are trained to end with it, and rollouts stop on it, so a model stops where its own
    template would close the turn even when that token is not the tokenizer's EOS.
    """
    cached = getattr(tokenizer, "_logrl_assistant_end_id", None)
    if cached is not None:
        return cached
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": _TURN_PROBE},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    after = text.split(_TURN_PROBE, 1)[1] if _TURN_PROBE in text else ""
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after.strip() else []
    end = ids[0] if ids and ids[0] in tokenizer.all_special_ids else tokenizer.eos_token_id
    tokenizer._logrl_assistant_end_id = end
    return end


def encode_completion(tokenizer, text: str) -> list[int]:
    """Token ids of a target completion, closed by the assistant turn's end token so the model learns to stop."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [assistant_end_id(tokenizer)]


def pad_pairs(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad prompt+completion pairs; `completion_mask[b, t]` marks completion token t+1 (shifted targets)."""
    width = max(len(p) + len(c) for p, c in pairs)
    input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(pairs), width), dtype=torch.long)
    completion_mask = torch.zeros((len(pairs), width - 1), dtype=torch.float32)
    for row, (prompt, completion) in enumerate(pairs):
        seq = prompt + completion
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = 1
        completion_mask[row, len(prompt) - 1 : len(seq) - 1] = 1.0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token t+1 | tokens ≤ t) for every position at a sampling temperature: shape [B, T-1].

    Dividing by the temperature matches the logprobs vLLM reports for samples drawn at that temperature.
    """
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def align_to_mask(values: Sequence[Sequence[float]], mask: torch.Tensor) -> torch.Tensor:
    """Scatter per-completion-token values (e.g. rollout logprobs) into the [B, T-1] masked layout."""
    out = torch.zeros_like(mask)
    for row, seq in enumerate(values):
        positions = mask[row].nonzero().squeeze(-1)
        out[row, positions] = torch.tensor(list(seq), dtype=out.dtype)
    return out


def unpad(values: torch.Tensor, mask: torch.Tensor) -> list[list[float]]:
    """Inverse of `align_to_mask`: the masked values of each row as a list."""
    return [values[row][mask[row].bool()].tolist() for row in range(values.shape[0])]
