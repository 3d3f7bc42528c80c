"""GRPO math as pure torch functions: advantage estimators and policy losses in registries, k3 KL, the loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rl_actors.config import AlgoConfig

# Keeps a group whose rewards are all equal at advantage 0 instead of 0/0.
GRPO_EPS = 1e-6
# exp() of a log-ratio beyond this overflows float32 long before it means anything.
_MAX_LOG_RATIO = 20.0

AdvantageFn = Callable[[Tensor, int], Tensor]
# (logp, old_logp, advantages, cfg) -> (per-token loss, per-token diagnostics such as "clipped")
PolicyLossFn = Callable[[Tensor, Tensor, Tensor, AlgoConfig], tuple[Tensor, dict[str, Tensor]]]

ADVANTAGES: dict[str, AdvantageFn] = {}
POLICY_LOSSES: dict[str, PolicyLossFn] = {}


def _registrar(registry: dict, kind: str) -> Callable[[str], Callable]:
    def register(name: str) -> Callable:
        def decorator(fn: Callable) -> Callable:
            if name in registry:
                raise ValueError(f"{kind} {name!r} is already registered")
            registry[name] = fn
            return fn

        return decorator

    return register


def _lookup(registry: dict, kind: str, name: str) -> Callable:
    try:
        return registry[name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}") from None


register_advantage = _registrar(ADVANTAGES, "advantage estimator")
register_policy_loss = _registrar(POLICY_LOSSES, "policy loss")


def get_advantage(name: str) -> AdvantageFn:
    """The advantage estimator registered under `name`."""
    return _lookup(ADVANTAGES, "advantage estimator", name)


def get_policy_loss(name: str) -> PolicyLossFn:
    """The policy loss registered under `name`."""
    return _lookup(POLICY_LOSSES, "policy loss", name)


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [num_prompts * group_size], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    values = rewards if rewards.is_floating_point() else rewards.float()
    return values.view(-1, group_size)


@register_advantage("grpo")
def grpo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """(r - group mean) / (group std + eps) over consecutive groups; std is the unbiased sample std.

    A group of one has no spread and gets advantage 0.
    """
    groups = _grouped(rewards, group_size)
    if group_size == 1:
        return torch.zeros_like(groups).view(-1)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True)
    return ((groups - mean) / (std + GRPO_EPS)).view(-1)


@register_advantage("grpo_no_std")
def grpo_no_std_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """r - group mean (Dr. GRPO): no std scaling, so the reward's scale survives.

    The default: every sample of a group shares one label, so per-group std scaling would map a missed
    anomaly's group [1, 1, -1.5, -1.5] and a false alarm's [1, 1, -0.5, -0.5] to the same advantages and erase
    the asymmetric payoff. Without it a missed anomaly is pushed down harder than a false alarm.
    """
    groups = _grouped(rewards, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).view(-1)


@register_advantage("grpo_batch_std")
def grpo_batch_std_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """(r - group mean) / (std of the whole batch + eps): one scale for all groups, so the asymmetry survives."""
    groups = _grouped(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if groups.numel() < 2:
        return centred.view(-1)
    return (centred / (groups.std() + GRPO_EPS)).view(-1)


def _token_advantages(advantages: Tensor, like: Tensor) -> Tensor:
    # One advantage per sequence broadcasts over its tokens; per-token advantages pass through.
    return advantages.unsqueeze(-1).expand_as(like) if advantages.dim() == like.dim() - 1 else advantages


@register_policy_loss("clipped")
def clipped_policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, cfg: AlgoConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate per token: -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A).

    With `cfg.dual_clip` = c (dual-clip PPO), a token with A < 0 loses at most -c * A: a huge ratio on a
    bad sample (stale or off-policy logprobs) cannot blow the update up.
    """
    adv = _token_advantages(advantages, logp)
    ratio = torch.exp(torch.clamp(logp - old_logp, -_MAX_LOG_RATIO, _MAX_LOG_RATIO))
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps)
    loss = torch.maximum(unclipped, clipped)
    diagnostics = {"clipped": (clipped > unclipped).to(logp.dtype), "ratio": ratio.detach()}
    if cfg.dual_clip is not None:
        bound = -adv * cfg.dual_clip
        dual = (adv < 0) & (loss > bound)
        loss = torch.where(dual, bound, loss)
        diagnostics["dual_clipped"] = dual.to(logp.dtype)
    return loss, diagnostics


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = torch.clamp(ref_logp - logp, -_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    return torch.exp(delta) - delta - 1.0


def aggregate(values: Tensor, mask: Tensor, mode: str, denominator: float | None = None) -> Tensor:
    """Masked mean of [batch, tokens] values: "token-mean" over all tokens, "seq-mean" of per-sequence means.

    Sequences without a single unmasked token are left out of "seq-mean"; an all-masked batch gives 0.
    `denominator` replaces this tensor's own token (or sequence) count by the whole batch's, so that
    micro-batches summed together give the mean over the batch (see `batch_denominator`).
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        count = mask.sum().clamp(min=1.0) if denominator is None else max(denominator, 1.0)
        return (values * mask).sum() / count
    if mode == "seq-mean":
        tokens = mask.sum(dim=-1)
        per_seq = (values * mask).sum(dim=-1) / tokens.clamp(min=1.0)
        present = (tokens > 0).to(values.dtype)
        count = present.sum().clamp(min=1.0) if denominator is None else max(denominator, 1.0)
        return (per_seq * present).sum() / count
    raise ValueError(f"unknown loss aggregation {mode!r}; known: 'token-mean', 'seq-mean'")


def batch_denominator(masks: list[Tensor], mode: str) -> float:
    """What `aggregate` divides by for the whole (local) batch: unmasked tokens, or sequences with a token.

    The learner sums this over ranks and passes it to every micro-batch's loss, so the gradient is the
    token-mean over the whole batch, not a mean of per-micro-batch means (which over-weights short ones).
    """
    if mode == "token-mean":
        return float(sum(float(m.sum()) for m in masks))
    if mode == "seq-mean":
        return float(sum(float((m.sum(dim=-1) > 0).sum()) for m in masks))
    raise ValueError(f"unknown loss aggregation {mode!r}; known: 'token-mean', 'seq-mean'")


def truncated_is_weights(old_logp: Tensor, rollout_logp: Tensor, cap: float) -> Tensor:
    """min(pi_old / pi_rollout, cap) per token: corrects for vLLM's sampler differing from the learner (TIS)."""
    return torch.exp(torch.clamp(old_logp - rollout_logp, -_MAX_LOG_RATIO, _MAX_LOG_RATIO)).clamp(max=cap).detach()


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    cfg: AlgoConfig,
    denominator: float | None = None,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Policy loss + kl_coef * k3 KL, aggregated by `cfg.loss_agg`; metrics are detached floats.

    Shapes: logp/old_logp/ref_logp/mask [batch, tokens], advantages [batch] (or [batch, tokens]).
    `ref_logp` may be None when kl_coef is 0 (no reference forward pass needed). `denominator`: the whole
    batch's token (or sequence) count, for micro-batches (see `aggregate`). `is_weights`: per-token truncated
    importance weights multiplying the policy loss.
    """
    if old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask {tuple(mask.shape)} must match"
        )
    policy_loss = get_policy_loss(cfg.policy_loss)
    per_token, diagnostics = policy_loss(logp, old_logp, advantages, cfg)
    if is_weights is not None:
        per_token = per_token * is_weights
    pg_loss = aggregate(per_token, mask, cfg.loss_agg, denominator)
    loss = pg_loss
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp)
        loss = loss + cfg.kl_coef * aggregate(kl, mask, cfg.loss_agg, denominator)
        kl_mean = aggregate(kl.detach(), mask, "token-mean")
    elif cfg.kl_coef > 0:
        raise ValueError("ref_logp is required when kl_coef > 0")
    else:
        kl_mean = torch.zeros(())
    metrics = {
        "loss": float(loss.detach()),
        "pg_loss": float(pg_loss.detach()),
        "kl_mean": float(kl_mean),
    }
    # Diagnostics are reported per token whatever the loss aggregation: "clipped" -> clip_frac, "ratio" -> ratio_mean.
    names = {"clipped": "clip_frac", "ratio": "ratio_mean", "dual_clipped": "dual_clip_frac"}
    for key, value in diagnostics.items():
        metrics[names.get(key, f"{key}_mean")] = float(aggregate(value.detach(), mask, "token-mean"))
    return loss, metrics
