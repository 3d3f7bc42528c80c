"""Token plumbing: completion masks line up with shifted targets; logprob gathering; (un)padding."""

from __future__ import annotations

import math

import torch

from rl_actors.sequences import align_to_mask, pad_pairs, token_logprobs, unpad


def test_pad_pairs_masks_exactly_the_completion_targets():
    batch = pad_pairs([([1, 2, 3], [4, 5]), ([6], [7, 8, 9])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # position t predicts token t+1: completion tokens 4,5 sit at targets 3,4 -> mask positions 2,3
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 0]]
    targets = batch["input_ids"][:, 1:][batch["completion_mask"].bool()].tolist()
    assert targets == [4, 5, 7, 8, 9]


def test_token_logprobs_on_uniform_logits():
    logits = torch.zeros(1, 3, 4)
    values = token_logprobs(logits, torch.tensor([[0, 1, 2]]))
    assert values.shape == (1, 2)
    assert torch.allclose(values, torch.full((1, 2), -math.log(4)))


def test_align_and_unpad_round_trip():
    mask = pad_pairs([([1, 2], [3, 4, 5]), ([1, 2, 3], [4])], pad_id=0)["completion_mask"]
    values = [[-0.1, -0.2, -0.3], [-0.4]]
    dense = align_to_mask(values, mask)
    assert dense.shape == mask.shape and float(dense[mask == 0].abs().sum()) == 0
    assert [[round(x, 6) for x in row] for row in unpad(dense, mask)] == values


def test_completion_ends_with_eos_when_the_template_leaves_the_assistant_turn_open():
    from pipelines.prompts import SYSTEM_PROMPT
    from rl_actors.sequences import assistant_end_id, encode_completion
    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([SYSTEM_PROMPT, "L1 KERNEL INFO: job started normal anomalous"], 300)
    assert assistant_end_id(tokenizer) == tokenizer.eos_token_id  # the tiny template never closes that turn
    assert encode_completion(tokenizer, "<answer>normal</answer>")[-1] == tokenizer.eos_token_id


def test_completion_ends_with_the_token_that_closes_an_assistant_turn():
    from pipelines.prompts import SYSTEM_PROMPT
    from rl_actors.sequences import assistant_end_id, encode_completion
    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([SYSTEM_PROMPT, "normal anomalous"], 300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|end_turn|>"]})
    tokenizer.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end_turn|>{% endfor %}"
    end_turn = tokenizer.convert_tokens_to_ids("<|end_turn|>")
    assert end_turn != tokenizer.eos_token_id and assistant_end_id(tokenizer) == end_turn
    assert encode_completion(tokenizer, "<answer>normal</answer>")[-1] == end_turn
