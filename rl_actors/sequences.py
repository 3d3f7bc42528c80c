"""Token-level plumbing shared by SFT and GRPO: completion encoding, padding, per-token logprobs.

Prompts are encoded by `contract.chat_tokens.chat_token_ids`, the one step eval and serving share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

# (input_ids, attention_mask, keep) -> logits: the model's forward, however it is wrapped (DeepSpeed, PEFT).
# `keep` (positions, ascending and contiguous) asks for logits only there, [B, len(keep), V]; None: all, [B, T, V].
# The LM head is a fifth of a small model's compute per position: prompt positions need none of it.
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


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


def batch_to(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on `device` (the engine's): the forward pass and collectives run there."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def collate(
    pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """`pad_pairs` on the CPU, then moved to `device`."""
    return batch_to(pad_pairs(pairs, pad_id), device)


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token t+1 | tokens ≤ t) for every position at a sampling temperature: shape [B, T-1].

    Dividing by the temperature matches the logprobs vLLM reports for samples drawn at that temperature.
    """
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def completion_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0, first: int = 0
) -> torch.Tensor:
    """`token_logprobs` at the positions `mask` marks (completion targets), 0 elsewhere: shape [B, T-1].

    `logits` hold positions `first`, `first + 1`, ... (a completion window, see `completion_window`); every
    masked position must be among them. Only the N masked positions are upcast and normalised (chosen logit
    minus logsumexp over the vocabulary), so no [B, T, V] fp32 log-softmax is ever built: [N, V] instead.
    """
    width = min(logits.shape[1], mask.shape[1] - first)
    window = mask[:, first : first + width].bool()
    if int(window.sum()) != int(mask.bool().sum()):
        raise ValueError(f"completion positions outside the logits window [{first}, {first + width})")
    picked = logits[:, :width][window].float()  # [N, V]
    if temperature != 1.0:
        picked = picked / temperature
    targets = input_ids[:, 1:][:, first : first + width][window].unsqueeze(-1)
    values = picked.gather(-1, targets).squeeze(-1) - torch.logsumexp(picked, dim=-1)
    out = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
    out[:, first : first + width] = out[:, first : first + width].masked_scatter(window, values)
    return out


def completion_window(mask: torch.Tensor) -> tuple[int, torch.Tensor | None]:
    """The first position whose logits a batch needs and the positions to keep (None: the batch has no target)."""
    if mask.is_meta:
        return 0, None  # a shape-only tensor has no values to find a window in
    columns = mask.bool().any(dim=0).nonzero().flatten()
    if columns.numel() == 0:
        return 0, None
    first, last = int(columns[0]), int(columns[-1])
    return first, torch.arange(first, last + 1, device=mask.device)


def masked_logprobs(
    forward: Forward, batch: dict[str, torch.Tensor], temperature: float = 1.0, micro_batch_size: int | None = None
) -> torch.Tensor:
    """`completion_logprobs` of a padded batch, `micro_batch_size` rows per forward (None: all at once)."""
    rows = batch["input_ids"].shape[0]
    step = micro_batch_size or max(rows, 1)
    chunks = []
    for s in range(0, rows, step):
        ids, mask = batch["input_ids"][s : s + step], batch["completion_mask"][s : s + step]
        first, keep = completion_window(mask)
        logits = forward(ids, batch["attention_mask"][s : s + step], keep)
        chunks.append(completion_logprobs(logits, ids, mask, temperature, first if keep is not None else 0))
    return torch.cat(chunks) if chunks else torch.zeros_like(batch["completion_mask"])


def pairs_logprobs(
    forward: Forward,
    pairs: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    device: torch.device | str,
    temperature: float = 1.0,
    micro_batch_size: int = 8,
) -> list[list[float]]:
    """Completion-token logprobs of (prompt, completion) pairs, padded and run `micro_batch_size` at a time."""
    out: list[list[float]] = []
    for start in range(0, len(pairs), micro_batch_size):
        batch = collate(pairs[start : start + micro_batch_size], pad_id, device)
        out.extend(unpad(masked_logprobs(forward, batch, temperature), batch["completion_mask"]))
    return out


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
