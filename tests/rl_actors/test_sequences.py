"""Token plumbing: completion masks line up with shifted targets; logprob gathering; (un)padding."""

from __future__ import annotations

import math

import pytest
import torch

from rl_actors.sequences import (
    align_to_mask,
    collate,
    completion_logprobs,
    masked_logprobs,
    pad_pairs,
    pairs_logprobs,
    token_logprobs,
    unpad,
)


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
    from pipelines.prompts.render import SYSTEM_PROMPT
    from rl_actors.sequences import assistant_end_id, encode_completion
    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([SYSTEM_PROMPT, "L1 KERNEL INFO: job started normal anomalous"], 300)
    assert assistant_end_id(tokenizer) == tokenizer.eos_token_id  # the tiny template never closes that turn
    assert encode_completion(tokenizer, "<answer>normal</answer>")[-1] == tokenizer.eos_token_id


def test_completion_ends_with_the_token_that_closes_an_assistant_turn():
    from pipelines.prompts.render import SYSTEM_PROMPT
    from rl_actors.sequences import assistant_end_id, encode_completion
    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([SYSTEM_PROMPT, "normal anomalous"], 300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|end_turn|>"]})
    tokenizer.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end_turn|>{% endfor %}"
    end_turn = tokenizer.convert_tokens_to_ids("<|end_turn|>")
    assert end_turn != tokenizer.eos_token_id and assistant_end_id(tokenizer) == end_turn
    assert encode_completion(tokenizer, "<answer>normal</answer>")[-1] == end_turn


# --- the learner's log-prob passes: on the engine's device, completion positions only, micro-batched ---------------


def _tiny_llama(vocab: int = 48):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    return LlamaForCausalLM(config).eval()


def _pairs(vocab: int = 48, n: int = 5) -> list[tuple[list[int], list[int]]]:
    gen = torch.Generator().manual_seed(1)
    lengths = [(3, 4), (5, 2), (2, 6), (4, 1), (6, 3)][:n]
    return [
        (torch.randint(1, vocab, (p,), generator=gen).tolist(), torch.randint(1, vocab, (c,), generator=gen).tolist())
        for p, c in lengths
    ]


def test_collate_puts_every_tensor_on_the_target_device():
    batch = collate([([1, 2], [3]), ([4], [5, 6])], pad_id=0, device=torch.device("meta"))
    assert {key: t.device.type for key, t in batch.items()} == dict.fromkeys(batch, "meta")


class _Reached(Exception):
    pass


def test_logprob_passes_feed_the_model_on_the_target_device():
    seen = []

    class MetaLM(torch.nn.Module):  # lives on the meta device; stops once it has seen what it is given
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(8, 16, device="meta")

        def forward(self, input_ids, attention_mask, keep=None):
            seen.append((input_ids.device, attention_mask.device, input_ids.shape[0]))
            raise _Reached

    meta = torch.device("meta")
    with pytest.raises(_Reached):
        pairs_logprobs(MetaLM(), [([1, 2], [3, 4]), ([5], [6])], pad_id=0, device=meta, micro_batch_size=1)
    with pytest.raises(_Reached):
        masked_logprobs(MetaLM(), collate([([1, 2], [3, 4])], 0, meta), temperature=0.7, micro_batch_size=1)
    assert seen == [(meta, meta, 1), (meta, meta, 1)]


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_completion_logprobs_equal_the_full_log_softmax(temperature):
    model = _tiny_llama()
    batch = pad_pairs(_pairs(), pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["completion_mask"]
    naive = token_logprobs(logits, batch["input_ids"], temperature) * mask
    fast = completion_logprobs(logits, batch["input_ids"], mask, temperature)
    assert fast.shape == naive.shape and fast.dtype == torch.float32
    assert torch.allclose(fast, naive, atol=1e-5, rtol=0)
    assert float(fast[mask == 0].abs().sum()) == 0


def test_completion_logprobs_carry_the_same_gradient_as_the_full_log_softmax():
    model = _tiny_llama()
    batch = pad_pairs(_pairs(), pad_id=0)
    mask = batch["completion_mask"]
    grads = []
    for fn in (
        lambda lg: token_logprobs(lg, batch["input_ids"]) * mask,
        lambda lg: completion_logprobs(lg, batch["input_ids"], mask),
    ):
        model.zero_grad()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        fn(logits).sum().backward()
        grads.append(model.lm_head.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_no_full_vocabulary_log_softmax_is_built(monkeypatch):
    model = _tiny_llama()

    def refuse(*args, **kwargs):
        raise AssertionError("a full [batch, seq, vocab] log-softmax was taken")

    monkeypatch.setattr(torch, "log_softmax", refuse)
    monkeypatch.setattr(torch.Tensor, "log_softmax", refuse)
    monkeypatch.setattr(torch.nn.functional, "log_softmax", refuse)
    forward = lambda ids, attn, keep=None: model(input_ids=ids, attention_mask=attn).logits  # noqa: E731
    with torch.no_grad():
        assert len(pairs_logprobs(forward, _pairs(), 0, "cpu", micro_batch_size=2)) == 5


@pytest.mark.parametrize("micro_batch_size", [1, 2, 3])
def test_micro_batched_logprobs_match_one_big_batch(micro_batch_size):
    model = _tiny_llama()
    calls = []

    def forward(input_ids, attention_mask, keep=None):
        calls.append(input_ids.shape[0])
        return model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=_keep(keep)).logits

    pairs = _pairs()
    with torch.no_grad():
        whole = pairs_logprobs(forward, pairs, 0, "cpu", micro_batch_size=len(pairs))
        calls.clear()
        micro = pairs_logprobs(forward, pairs, 0, "cpu", micro_batch_size=micro_batch_size)
        assert max(calls) == micro_batch_size and sum(calls) == len(pairs)
        batch = pad_pairs(pairs, 0)
        rows = masked_logprobs(forward, batch, 1.0, micro_batch_size)
        full = masked_logprobs(forward, batch, 1.0, None)
    assert [len(x) for x in micro] == [len(c) for _, c in pairs]
    for a, b in zip(whole, micro):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)
    assert torch.allclose(rows, full, atol=1e-5, rtol=0)
    naive = token_logprobs(forward(batch["input_ids"], batch["attention_mask"]), batch["input_ids"])
    assert torch.allclose(full, naive * batch["completion_mask"], atol=1e-5, rtol=0)


def _keep(keep):
    return 0 if keep is None else keep  # transformers: 0 keeps every position


def test_lm_head_runs_only_on_the_completion_window():
    model = _tiny_llama()
    kept = []

    def windowed(ids, attn, keep=None):
        kept.append(None if keep is None else keep.tolist())
        return model(input_ids=ids, attention_mask=attn, logits_to_keep=_keep(keep)).logits

    def naive(batch):  # the full log-softmax over every position's logits
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return token_logprobs(logits, batch["input_ids"], 0.7) * batch["completion_mask"]

    batch = pad_pairs([([1, 2, 3, 4, 5, 6], [7, 8]), ([1, 2, 3, 4], [5, 6, 7])], pad_id=0)
    with torch.no_grad():
        fast, full = masked_logprobs(windowed, batch, 0.7), naive(batch)
    assert torch.allclose(fast, full, atol=1e-6, rtol=0) and float(fast.abs().sum()) > 0
    # Targets are positions 3..6 (the second prompt's last token to the first completion's end): prompt
    # positions 0..2 get no logits at all.
    assert kept == [[3, 4, 5, 6]]
    # The same gradient reaches the model through the window.
    grads = []
    for run in (lambda: masked_logprobs(windowed, batch, 0.7), lambda: naive(batch)):
        model.zero_grad()
        run().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
    with pytest.raises(ValueError, match="outside the logits window"):
        completion_logprobs(full[:, :2].unsqueeze(-1).expand(-1, -1, 5), batch["input_ids"], batch["completion_mask"])
