"""The learner's GPU path without a GPU: device placement, micro-batched log-prob passes, lockstep micro-steps.

LearnerCore runs here over a stand-in for the DeepSpeed engine (it counts forward/backward/step calls), with a
tiny causal model; no Ray, no DeepSpeed, no process group.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from contract.sharding import split_evenly
from rl_actors.batch import Sample
from rl_actors.config import AlgoConfig, LearnerConfig
from rl_actors.learner import (
    LearnerCore,
    deepspeed_config,
    dist_backend,
    dropout_free,
    enable_gradient_checkpointing,
    plan_micro_steps,
)


class TinyLM(torch.nn.Module):
    """Causal by construction (a running sum over positions); checks it is fed on its own device."""

    def __init__(self, vocab: int = 32, hidden: int = 16, device: str = "cpu"):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, hidden, device=device)
        self.mix = torch.nn.Linear(hidden, hidden, device=device)
        self.head = torch.nn.Linear(hidden, vocab, device=device)

    def forward(self, input_ids, attention_mask, logits_to_keep=None):
        device = self.head.weight.device
        assert input_ids.device == device and attention_mask.device == device, "batch is not on the model's device"
        hidden = torch.tanh(self.mix(self.emb(input_ids).cumsum(1)))
        return SimpleNamespace(logits=self.head(hidden if logits_to_keep is None else hidden[:, logits_to_keep]))

    @contextmanager
    def disable_adapter(self):
        yield


class FakeEngine:
    """The parts of a DeepSpeed engine the learner uses; records the call sequence."""

    def __init__(self, module: torch.nn.Module, device: str = "cpu"):
        self.module, self.device = module, torch.device(device)
        self.calls: list[str] = []
        self.forward_rows: list[int] = []

    def __call__(self, input_ids, attention_mask, **kwargs):
        self.forward_rows.append(input_ids.shape[0])
        return self.module(input_ids, attention_mask, **kwargs)

    def backward(self, loss):
        assert loss.device == self.device
        loss.backward()
        self.calls.append("backward")

    def step(self):
        self.calls.append("step")

    def train(self):
        self.module.train()

    def eval(self):
        self.module.eval()

    def get_global_grad_norm(self):
        return None


def _core(
    engine, grad_accum: int = 4, learner: dict | None = None, algo: dict | None = None, dropout_free: bool = False
) -> LearnerCore:
    core = LearnerCore.__new__(LearnerCore)  # skip loading a HF model: the engine stands in for it
    core.cfg = LearnerConfig(**(learner or {}))
    core.algo = AlgoConfig(**({"kl_coef": 0.0} | (algo or {})))
    core.rank, core.world_size, core.temperature = 0, 1, 1.0
    core.tokenizer = SimpleNamespace(pad_token_id=0)
    core.engine, core.grad_accum, core.reference_adapter = engine, grad_accum, False
    core.trainable, core.dropout_free = set(), dropout_free
    return core


def _pairs(n: int) -> list[tuple[list[int], list[int]]]:
    return [([1 + i % 7, 2, 3][: 1 + i % 3], [4 + i % 5, 5, 6, 7][: 1 + i % 4]) for i in range(n)]


def _samples(n: int, **extra) -> list[Sample]:
    return [
        Sample(
            group_id=i // 2,
            sample_index=i % 2,
            prompt_index=i // 2,
            prompt_ids=p,
            completion_ids=c,
            rollout_logprobs=[-1.0] * len(c),
            advantage=(-1.0) ** i,
            **extra,
        )
        for i, (p, c) in enumerate(_pairs(n))
    ]


# --- 1. batches go to the engine's device ---------------------------------------------------------------------


class _Reached(Exception):
    pass


def test_grpo_batch_lives_on_the_engine_device():
    engine = FakeEngine(TinyLM(device="meta"), device="meta")
    core = _core(engine, algo={"old_logprobs": "rollout", "kl_coef": 0.02})
    samples = [replace(s, ref_logprobs=tuple(s.rollout_logprobs)) for s in _samples(3)]
    batch = core._grpo_batches([samples])[0]
    assert {key: t.device.type for key, t in batch.items()} == dict.fromkeys(batch, "meta")
    assert set(batch) >= {"input_ids", "attention_mask", "completion_mask", "old_logp", "advantages", "ref_logp"}


@pytest.mark.parametrize("call", ["sft", "old_logp", "reference", "logprobs"])
def test_every_forward_is_fed_on_the_engine_device(call):
    seen = []

    class MetaLM(TinyLM):
        def forward(self, input_ids, attention_mask, logits_to_keep=None):
            seen.append((input_ids.device.type, attention_mask.device.type))
            raise _Reached

    core = _core(FakeEngine(MetaLM(device="meta"), device="meta"), algo={"kl_coef": 0.02})
    with pytest.raises(_Reached):
        if call == "sft":
            core.sft_step(_pairs(2))
        elif call == "old_logp":
            core._grpo_batches([_samples(2)])
        elif call == "reference":
            core.algo = AlgoConfig(old_logprobs="rollout", kl_coef=0.02)
            core._grpo_batches([_samples(2)])
        else:
            core.logprobs(_pairs(2), reference=True)
    assert seen == [("meta", "meta")]


# --- 2. log-prob passes are micro-batched ---------------------------------------------------------------------


def test_logprobs_run_in_micro_batches_and_match_one_batch():
    engine = FakeEngine(TinyLM())
    pairs = _pairs(5)
    whole = _core(engine, learner={"logprob_micro_batch_size": 8}).logprobs(pairs)
    assert engine.forward_rows == [5]
    engine.forward_rows.clear()
    micro = _core(engine, learner={"logprob_micro_batch_size": 2}).logprobs(pairs, reference=True)
    assert engine.forward_rows == [2, 2, 1]
    assert [len(x) for x in micro] == [len(c) for _, c in pairs]
    for a, b in zip(whole, micro):
        assert a == pytest.approx(b, abs=1e-5)


def test_old_policy_and_reference_passes_use_the_logprob_micro_batch_size():
    engine = FakeEngine(TinyLM())
    core = _core(engine, grad_accum=1, learner={"logprob_micro_batch_size": 3}, algo={"kl_coef": 0.02})
    batch = core._grpo_batches([_samples(7)])[0]  # one training micro-batch of 7: old policy, then reference
    assert engine.forward_rows == [3, 3, 1, 3, 3, 1]
    assert batch["old_logp"].shape == batch["completion_mask"].shape == batch["ref_logp"].shape


def test_logprob_micro_batch_size_is_a_validated_config_field():
    from pydantic import ValidationError

    assert LearnerConfig().logprob_micro_batch_size >= 1
    with pytest.raises(ValidationError, match="logprob_micro_batch_size"):
        LearnerConfig(logprob_micro_batch_size=0)


# --- 3. ZeRO-2 + bf16 + gradient checkpointing ------------------------------------------------------------------


def test_deepspeed_config_follows_the_learner_config():
    ds = deepspeed_config(LearnerConfig(zero_stage=2, dtype="bfloat16", micro_batch_size=4, grad_clip=0.5), 3)
    assert ds["zero_optimization"] == {"stage": 2} and ds["bf16"] == {"enabled": True}
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 3
    assert ds["gradient_clipping"] == 0.5
    assert deepspeed_config(LearnerConfig(), 1)["bf16"] == {"enabled": False}


def test_gradient_checkpointing_keeps_the_lora_gradients():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    ids = torch.randint(1, 40, (2, 9), generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        base = LlamaForCausalLM(config)
        if checkpointing:
            enable_gradient_checkpointing(base)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(base, lora)
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        assert base.is_gradient_checkpointing is checkpointing
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


# --- 4. every rank runs the same micro-steps ----------------------------------------------------------------------


@pytest.mark.parametrize("grad_accum", [1, 2, 4])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("items", [0, 1, 2, 5, 12])
def test_micro_step_plan_is_the_same_length_on_every_rank(items, world_size, grad_accum):
    shards = split_evenly(items, world_size)  # what ActorGroup.call_sharded hands each rank
    plans = [plan_micro_steps(end - start, grad_accum) for start, end in shards]
    assert all(len(plan) == grad_accum for plan in plans)
    for (start, end), plan in zip(shards, plans):
        covered = [i for s, e in plan for i in range(s, e)]
        assert covered == list(range(end - start))  # every item once, in order; the rest are empty slots


def test_micro_step_plan_refuses_zero_accumulation():
    with pytest.raises(ValueError, match="grad_accum"):
        plan_micro_steps(3, 0)


@pytest.mark.parametrize("n", [0, 1, 2, 4, 6])
def test_sft_step_calls_engine_step_grad_accum_times_whatever_the_shard(n):
    engine = FakeEngine(TinyLM())
    metrics = _core(engine, grad_accum=4).sft_step(_pairs(n))
    assert engine.calls == ["backward", "step"] * 4
    assert ("sft/loss" in metrics) is (n > 0)


@pytest.mark.parametrize("n", [0, 1, 3, 8])
@pytest.mark.parametrize("epochs", [1, 2])
def test_grpo_step_calls_engine_step_grad_accum_times_per_epoch(n, epochs):
    engine = FakeEngine(TinyLM())
    core = _core(engine, grad_accum=4, algo={"epochs_per_batch": epochs})
    metrics = core.grpo_step(_samples(n))
    assert engine.calls == ["backward", "step"] * 4 * epochs
    assert ("actor/loss" in metrics) is (n > 0)


def test_the_dummy_micro_step_adds_no_gradient():
    engine = FakeEngine(TinyLM())
    _core(engine, grad_accum=3).grpo_step([])
    grads = [p.grad for p in engine.module.parameters()]
    assert all(g is not None for g in grads)  # every parameter took part (ZeRO's reduce hooks fire)
    assert all(float(g.abs().sum()) == 0.0 for g in grads)


def test_rank_metrics_average_over_the_ranks_that_report_them():
    from rl_actors.metrics import mean_over_ranks

    merged = mean_over_ranks([{"actor/loss": 1.0, "time/learn": 2.0}, {"time/learn": 4.0}])
    assert merged == {"actor/loss": 1.0, "time/learn": 3.0}


# --- 5. the process-group backend follows the config ------------------------------------------------------------


def test_backend_is_chosen_from_the_learner_config(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU visible to the process is not enough
    assert dist_backend(LearnerConfig(num_gpus_per_worker=0)) == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist_backend(LearnerConfig(num_gpus_per_worker=1)) == "nccl"


def test_grpo_step_refuses_samples_without_an_advantage():
    core = _core(FakeEngine(TinyLM()), grad_accum=1)
    with pytest.raises(ValueError, match=r"without an advantage.*\(0, 1\)"):
        core.grpo_step([*_samples(1), replace(_samples(2)[1], advantage=None)])


# --- old-policy log-probs from the update's own forward ----------------------------------------------------------


def test_old_logprobs_come_from_the_updates_first_forward_when_that_is_exact():
    runs = {}
    for reuse in (False, True):
        engine = FakeEngine(TinyLM())
        core = _core(engine, grad_accum=2, algo={"kl_coef": 0.0, "tis_cap": 2.0}, dropout_free=reuse)
        assert core.old_is_current == reuse
        metrics = core.grpo_step(_samples(6))
        grads = [p.grad.clone() for p in engine.module.parameters()]
        runs[reuse] = (metrics, grads, list(engine.forward_rows))
    (separate, separate_grads, separate_rows), (reused, reused_grads, reused_rows) = runs[False], runs[True]
    assert separate_rows == [3, 3, 3, 3] and reused_rows == [3, 3]  # one forward per micro-batch saved
    for key in ("actor/loss", "actor/pg_loss", "actor/ratio_mean", "actor/rollout_logp_gap"):
        assert reused[key] == pytest.approx(separate[key], abs=1e-6), key
    assert reused["actor/ratio_mean"] == pytest.approx(1.0)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(separate_grads, reused_grads))


def test_old_logprobs_get_their_own_pass_when_the_policy_moves_or_dropout_is_on():
    core = _core(FakeEngine(TinyLM()), algo={"epochs_per_batch": 2}, dropout_free=True)
    assert not core.old_is_current  # the second epoch's forward is no longer the old policy
    assert not _core(FakeEngine(TinyLM()), algo={"old_logprobs": "rollout"}, dropout_free=True).old_is_current
    assert dropout_free(TinyLM())
    assert not dropout_free(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1)))
    assert dropout_free(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0)))
    lm = TinyLM()
    lm.config = SimpleNamespace(attention_dropout=0.1)
    assert not dropout_free(lm)
