"""GRPO math on hand-computed tensors: advantages, clipped loss, k3 KL, aggregation, the combined loss."""

from __future__ import annotations

import math

import pytest
import torch

from rl_actors.algos import (
    ADVANTAGES,
    POLICY_LOSSES,
    aggregate,
    clipped_policy_loss,
    get_advantage,
    get_policy_loss,
    grpo_loss,
    kl_k3,
    register_advantage,
    register_policy_loss,
)
from rl_actors.config import AlgoConfig

ROOT3 = math.sqrt(3.0)


def test_grpo_advantages_hand_computed() -> None:
    # mean 0.5, unbiased std sqrt(1/3): (1 - 0.5) / sqrt(1/3) = sqrt(3) / 2
    adv = get_advantage("grpo")(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    assert torch.allclose(adv, torch.tensor([ROOT3 / 2, -ROOT3 / 2, -ROOT3 / 2, ROOT3 / 2]), atol=1e-5)


def test_grpo_groups_are_consecutive_and_independent() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0, 3.0, 2.0, 0.0, 0.0, 0.0])
    adv = get_advantage("grpo")(rewards, 4)
    assert torch.allclose(adv[:4], torch.tensor([ROOT3 / 2, -ROOT3 / 2, -ROOT3 / 2, ROOT3 / 2]), atol=1e-5)
    assert torch.equal(adv[4:8], torch.zeros(4))  # all equal: no signal, no division by zero
    # mean 0.5, unbiased std 1: [1.5, -0.5, -0.5, -0.5]
    assert torch.allclose(adv[8:], torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-5)


def test_grpo_no_std_is_mean_centering() -> None:
    adv = get_advantage("grpo_no_std")(torch.tensor([1, 0, 0, 1, 2, 0]), 2)
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, -0.5, 0.5, 1.0, -1.0]))


def test_advantage_shape_errors() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        get_advantage("grpo")(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="1-D"):
        get_advantage("grpo_no_std")(torch.zeros(2, 4), 4)


def test_group_of_one_has_zero_advantage() -> None:
    assert torch.equal(get_advantage("grpo")(torch.tensor([1.0, 2.0]), 1), torch.zeros(2))


def test_clipped_loss_hand_computed() -> None:
    cfg = AlgoConfig(clip_eps=0.2)
    old = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5], [0.5, 1.5]]))
    adv = torch.tensor([1.0, -1.0])
    loss, diag = clipped_policy_loss(logp, old, adv, cfg)
    # A=+1: ratio 1.5 -> -min(1.5, 1.2) = -1.2 (clipped); ratio 0.5 -> -min(0.5, 0.8) = -0.5
    # A=-1: ratio 0.5 -> -min(-0.5, -0.8) = 0.8 (clipped); ratio 1.5 -> -min(-1.5, -1.2) = 1.5
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.5], [0.8, 1.5]]), atol=1e-6)
    assert torch.equal(diag["clipped"], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(diag["ratio"], torch.tensor([[1.5, 0.5], [0.5, 1.5]]))


def test_clipped_tokens_carry_no_gradient() -> None:
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()
    loss, _ = clipped_policy_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), AlgoConfig(clip_eps=0.2))
    loss.sum().backward()
    # d(-ratio)/dlogp = -ratio on the unclipped token, 0 on the clipped one.
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -1.1]]), atol=1e-6)


def test_kl_k3_values() -> None:
    logp = torch.zeros(3)
    ref = torch.tensor([math.log(2.0), 0.0, -math.log(2.0)])
    expected = torch.tensor([2 - math.log(2) - 1, 0.0, 0.5 + math.log(2) - 1])
    assert torch.allclose(kl_k3(logp, ref), expected, atol=1e-6)
    assert (kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()


def test_aggregations() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    # per-sequence means 2 and 4; the empty third sequence is left out
    assert aggregate(values, mask, "seq-mean").item() == pytest.approx(3.0)
    assert aggregate(values, torch.zeros_like(mask), "token-mean").item() == 0.0
    assert aggregate(values, torch.zeros_like(mask), "seq-mean").item() == 0.0
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(values, mask, "sum")


def test_grpo_loss_combines_policy_loss_and_kl() -> None:
    cfg = AlgoConfig(clip_eps=0.2, kl_coef=0.1, loss_agg="token-mean")
    logp = torch.log(torch.tensor([[1.5, 0.5], [0.5, 1.5]])).requires_grad_()
    old = torch.zeros(2, 2)
    ref = torch.zeros(2, 2)
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, metrics = grpo_loss(logp, old, ref, torch.tensor([1.0, -1.0]), mask, cfg)
    pg = (-1.2 - 0.5 + 0.8) / 3
    # k3 with ref = 0: 1/r + log r - 1 for ratio r
    k3 = [1 / 1.5 + math.log(1.5) - 1, 1 / 0.5 + math.log(0.5) - 1, 1 / 0.5 + math.log(0.5) - 1]
    kl = sum(k3) / 3
    assert loss.item() == pytest.approx(pg + 0.1 * kl, abs=1e-6)
    assert metrics["pg_loss"] == pytest.approx(pg, abs=1e-6)
    assert metrics["kl_mean"] == pytest.approx(kl, abs=1e-6)
    assert metrics["clip_frac"] == pytest.approx(2 / 3)
    assert metrics["ratio_mean"] == pytest.approx((1.5 + 0.5 + 0.5) / 3)
    assert metrics["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert logp.grad is not None and logp.grad[1, 1] == 0.0  # masked token gets no gradient


def test_grpo_loss_seq_mean_and_no_reference() -> None:
    cfg = AlgoConfig(kl_coef=0.0, loss_agg="seq-mean")
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # ratio 1 everywhere: per-token loss -A; seq means -2 and 1 -> -0.5
    loss, metrics = grpo_loss(logp, logp, None, torch.tensor([2.0, -1.0]), mask, cfg)
    assert loss.item() == pytest.approx(-0.5)
    assert metrics["kl_mean"] == 0.0 and metrics["clip_frac"] == 0.0 and metrics["ratio_mean"] == 1.0
    with pytest.raises(ValueError, match="ref_logp is required"):
        grpo_loss(logp, logp, None, torch.tensor([2.0, -1.0]), mask, AlgoConfig(kl_coef=0.1))


def test_grpo_loss_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="must match"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 2), None, torch.zeros(2), torch.ones(2, 3), AlgoConfig(kl_coef=0))


def test_registries_reject_duplicates_and_unknown_names() -> None:
    assert {"grpo", "grpo_no_std"} <= set(ADVANTAGES) and "clipped" in POLICY_LOSSES
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(lambda rewards, group_size: rewards)
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("clipped")(lambda *args: args)
    with pytest.raises(KeyError, match="unknown advantage estimator 'ppo'.*grpo, grpo_batch_std, grpo_no_std"):
        get_advantage("ppo")
    with pytest.raises(KeyError, match="unknown policy loss 'nope'.*clipped"):
        get_policy_loss("nope")


# --- the fixes that let GRPO learn ------------------------------------------------------------------------


def test_default_estimator_keeps_the_asymmetric_payoff() -> None:
    # Within a group every sample shares the label. Two right and two wrong answers:
    # a missed anomaly (fn = -1.5) and a false alarm (fp = -0.5), other rewards equal.
    missed = torch.tensor([1.0, 1.0, -1.5, -1.5])
    false_alarm = torch.tensor([1.0, 1.0, -0.5, -0.5])
    default = get_advantage(AlgoConfig().advantage)
    for name in (AlgoConfig().advantage, "grpo_batch_std"):
        estimator = get_advantage(name)
        both = estimator(torch.cat([missed, false_alarm]), 4)
        assert both[2] < both[6] < 0, name  # the missed anomaly is pushed down harder
    assert torch.allclose(default(missed, 4), torch.tensor([1.25, 1.25, -1.25, -1.25]))
    assert torch.allclose(default(false_alarm, 4), torch.tensor([0.75, 0.75, -0.75, -0.75]))
    # Per-group std scaling (still available) erases the difference: this is why it is not the default.
    per_group = get_advantage("grpo")
    assert torch.allclose(per_group(missed, 4), per_group(false_alarm, 4))


def test_batch_std_uses_one_scale() -> None:
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])
    adv = get_advantage("grpo_batch_std")(rewards, 2)
    centred = torch.tensor([0.5, -0.5, 1.0, -1.0])
    assert torch.allclose(adv, centred / rewards.std(), atol=1e-5)


def test_dual_clip_bounds_the_loss_of_negative_advantages() -> None:
    logp = torch.log(torch.tensor([[10.0, 0.5]]))
    old = torch.zeros(1, 2)
    plain, _ = clipped_policy_loss(logp, old, torch.tensor([-1.0]), AlgoConfig(dual_clip=None))
    dual, diag = clipped_policy_loss(logp, old, torch.tensor([-1.0]), AlgoConfig(dual_clip=3.0))
    assert plain[0, 0].item() == pytest.approx(10.0)  # ratio 10 with A = -1
    assert dual[0, 0].item() == pytest.approx(3.0)  # capped at -c * A
    assert dual[0, 1].item() == pytest.approx(plain[0, 1].item())
    assert torch.equal(diag["dual_clipped"], torch.tensor([[1.0, 0.0]]))
    positive, _ = clipped_policy_loss(logp, old, torch.tensor([1.0]), AlgoConfig(dual_clip=3.0))
    unclipped, _ = clipped_policy_loss(logp, old, torch.tensor([1.0]), AlgoConfig(dual_clip=None))
    assert torch.equal(positive, unclipped)  # positive advantages are untouched


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean"])
def test_micro_batches_with_the_batch_denominator_give_the_batch_loss(mode: str) -> None:
    """Token-mean over the whole batch, not a mean of micro-batch means (short micro-batches not over-weighted)."""
    from rl_actors.algos import batch_denominator

    torch.manual_seed(0)
    cfg = AlgoConfig(kl_coef=0.1, loss_agg=mode)
    logp = torch.randn(5, 6).requires_grad_()
    old, ref = torch.randn(5, 6), torch.randn(5, 6)
    adv = torch.randn(5)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0] * 6])
    whole, _ = grpo_loss(logp, old, ref, adv, mask, cfg)
    (whole_grad,) = torch.autograd.grad(whole, logp)
    splits = [slice(0, 1), slice(1, 3), slice(3, 5)]
    denominator = batch_denominator([mask[s] for s in splits], mode)
    parts = [grpo_loss(logp[s], old[s], ref[s], adv[s], mask[s], cfg, denominator=denominator)[0] for s in splits]
    summed = sum(parts)
    (summed_grad,) = torch.autograd.grad(summed, logp)
    assert summed.item() == pytest.approx(whole.item(), abs=1e-6)
    assert torch.allclose(summed_grad, whole_grad, atol=1e-6)
    naive = sum(grpo_loss(logp[s], old[s], ref[s], adv[s], mask[s], cfg)[0] for s in splits) / len(splits)
    assert naive.item() != pytest.approx(whole.item(), abs=1e-3)  # what the old per-micro-batch mean gave


def test_truncated_importance_weights() -> None:
    from rl_actors.algos import truncated_is_weights

    old = torch.log(torch.tensor([0.5, 0.9, 0.1]))
    rollout = torch.log(torch.tensor([0.5, 0.3, 0.4]))
    weights = truncated_is_weights(old, rollout, cap=2.0)
    assert torch.allclose(weights, torch.tensor([1.0, 2.0, 0.25]), atol=1e-6)
    loss, _ = grpo_loss(
        torch.zeros(1, 3),
        torch.zeros(1, 3),
        None,
        torch.tensor([1.0]),
        torch.ones(1, 3),
        AlgoConfig(kl_coef=0),
        is_weights=weights.unsqueeze(0),
    )
    assert loss.item() == pytest.approx(-(1.0 + 2.0 + 0.25) / 3)


def test_config_refuses_what_the_learner_cannot_match() -> None:
    from pydantic import ValidationError

    from rl_actors.config import RolloutConfig

    with pytest.raises(ValidationError, match="top_p"):
        RolloutConfig(top_p=0.9)
    with pytest.raises(ValidationError, match="old_logprobs: learner"):
        AlgoConfig(old_logprobs="rollout", tis_cap=2.0)


def test_temperature_scaled_token_logprobs() -> None:
    from rl_actors.sequences import token_logprobs

    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    ids = torch.tensor([[0, 0]])
    at_two = token_logprobs(logits, ids, temperature=2.0)
    assert at_two[0, 0].item() == pytest.approx(math.log(math.e / (math.e + 1)))
