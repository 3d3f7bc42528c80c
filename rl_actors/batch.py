"""The typed rollout batch that flows rollout -> reward -> learner: samples that name their group explicitly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from reward_workers.registry import RewardInput
from rl_actors.algos import get_advantage


@dataclass(frozen=True)
class PromptGroup:
    """One prompt to sample a group of G completions for, under a group id unique within the step.

    The group id, not the prompt, names the group: a prompt drawn twice in one step makes two groups.
    """

    group_id: int
    prompt_index: int  # the row of the training data the prompt was built from
    prompt_ids: list[int]
    context: RewardInput | None = None  # what its samples are scored with (prompt, label, ...; no completion)

    @classmethod
    def coerce(cls, item: PromptGroup | tuple[int, list[int]]) -> PromptGroup:
        """A `PromptGroup`, or a `(prompt_index, prompt_ids)` pair whose prompt index doubles as its group id."""
        if isinstance(item, PromptGroup):
            return item
        prompt_index, prompt_ids = item
        return cls(prompt_index, prompt_index, list(prompt_ids))


@dataclass(frozen=True)
class Sample:
    """One sampled completion of one group; the trainer fills in reward, reference logprobs and advantage."""

    group_id: int
    sample_index: int  # 0..G-1 within the group
    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    rollout_logprobs: list[float]  # per completion token, at the sampling temperature
    text: str = ""
    finish_reason: str | None = None
    policy_version: int | None = None  # the adapter version the rollout engine sampled it with
    ref_logprobs: tuple[float, ...] | None = None  # under the KL reference, when KL or a reward needs them
    reward: float | None = None
    advantage: float | None = None


@dataclass(frozen=True)
class RolloutBatch:
    """One step's samples, P groups of G, in whatever order they arrived."""

    samples: tuple[Sample, ...]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> RolloutBatch:
        return cls(tuple(samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def groups(self, group_size: int, expected: Iterable[int] | None = None) -> dict[int, list[int]]:
        """Group id -> positions of its samples ordered by sample index (see `group_positions`)."""
        return group_positions([(s.group_id, s.sample_index) for s in self.samples], group_size, expected)

    def with_rewards(self, rewards: Sequence[float]) -> RolloutBatch:
        """The batch with each sample's total reward, `rewards` in the batch's order."""
        if len(rewards) != len(self.samples):
            raise ValueError(f"{len(rewards)} rewards for {len(self.samples)} samples")
        return RolloutBatch(tuple(replace(s, reward=float(r)) for s, r in zip(self.samples, rewards)))

    def with_ref_logprobs(self, ref_logprobs: Sequence[tuple[float, ...] | None]) -> RolloutBatch:
        """The batch with each sample's reference logprobs, in the batch's order."""
        if len(ref_logprobs) != len(self.samples):
            raise ValueError(f"{len(ref_logprobs)} reference logprobs for {len(self.samples)} samples")
        return RolloutBatch(tuple(replace(s, ref_logprobs=r) for s, r in zip(self.samples, ref_logprobs)))

    def with_advantages(self, estimator: str, group_size: int) -> RolloutBatch:
        """Advantages from the registered `estimator`, grouped by group id and sample index, not arrival order."""
        missing = [(s.group_id, s.sample_index) for s in self.samples if s.reward is None]
        if missing:
            raise ValueError(f"samples without a reward (group, sample): {missing[:5]}")
        keys = [(s.group_id, s.sample_index) for s in self.samples]
        advantages = grouped_advantages(keys, [s.reward for s in self.samples], estimator, group_size)
        return RolloutBatch(tuple(replace(s, advantage=a) for s, a in zip(self.samples, advantages)))


def group_positions(
    keys: Sequence[tuple[int, int]], group_size: int, expected: Iterable[int] | None = None
) -> dict[int, list[int]]:
    """Group id -> positions of its samples ordered by sample index, groups by id, from each sample's
    (group id, sample index) in batch order.

    Every group must hold exactly samples 0..G-1 (a lost or duplicated sample is an error naming its group),
    and with `expected` group ids, exactly those groups must be present.
    """
    members: dict[int, dict[int, int]] = {}
    for position, (group_id, sample_index) in enumerate(keys):
        group = members.setdefault(group_id, {})
        if sample_index in group:
            raise ValueError(f"group {group_id}: sample {sample_index} arrived twice")
        group[sample_index] = position
    for group_id, group in members.items():
        if sorted(group) != list(range(group_size)):
            missing = sorted(set(range(group_size)) - set(group))
            extra = sorted(set(group) - set(range(group_size)))
            raise ValueError(
                f"group {group_id}: expected samples 0..{group_size - 1}, missing {missing}"
                + (f", unexpected {extra}" if extra else "")
            )
    if expected is not None:
        wanted = set(expected)
        if set(members) != wanted:
            raise ValueError(
                f"groups {sorted(wanted - set(members))} are missing, "
                f"groups {sorted(set(members) - wanted)} were not asked for"
            )
    return {g: [members[g][i] for i in range(group_size)] for g in sorted(members)}


def group_order(
    group_id: np.ndarray, sample_index: np.ndarray, group_size: int, expected: Iterable[int] | None = None
) -> np.ndarray:
    """Positions of a batch's samples ordered by (group id, sample index), from per-sample arrays: the vectorised
    `group_positions` (the driver runs it on every step, at any batch size). The same checks, the same named errors."""
    group_id, sample_index = np.asarray(group_id, dtype=np.int64), np.asarray(sample_index, dtype=np.int64)
    wanted = None if expected is None else np.unique(np.fromiter(expected, dtype=np.int64))
    order = np.lexsort((sample_index, group_id))
    ok = group_size >= 1 and len(order) % group_size == 0
    if ok and len(order):
        ids = group_id[order].reshape(-1, group_size)
        ok = bool(
            (ids == ids[:, :1]).all()
            and (sample_index[order].reshape(-1, group_size) == np.arange(group_size)).all()
            and (np.diff(ids[:, 0]) > 0).all()
        )
        ok = ok and (wanted is None or np.array_equal(wanted, ids[:, 0]))
    elif ok:
        ok = wanted is None or len(wanted) == 0
    if not ok:
        keys = list(zip(group_id.tolist(), sample_index.tolist()))
        group_positions(keys, group_size, None if wanted is None else wanted.tolist())  # raises the named error
        raise ValueError(f"samples do not form groups of {group_size}")
    return order


def grouped_advantages_of(
    group_id: np.ndarray, sample_index: np.ndarray, rewards: np.ndarray, estimator: str, group_size: int
) -> np.ndarray:
    """Each sample's advantage, in batch order, from the registered `estimator` over its group: per-sample arrays in,
    one array out (vectorised: no Python loop over samples)."""
    rewards = np.asarray(rewards, dtype=np.float32)
    if len(rewards) != len(group_id):
        raise ValueError(f"{len(rewards)} rewards for {len(group_id)} samples")
    order = group_order(group_id, sample_index, group_size)
    ordered = torch.from_numpy(rewards[order])
    advantages = np.empty(len(order), dtype=np.float64)
    advantages[order] = (get_advantage(estimator)(ordered, group_size) if len(order) else ordered).numpy()
    return advantages


def grouped_advantages(
    keys: Sequence[tuple[int, int]], rewards: Sequence[float], estimator: str, group_size: int
) -> list[float]:
    """Each sample's advantage, in batch order, from the registered `estimator` over its group (by id and index)."""
    if len(rewards) != len(keys):
        raise ValueError(f"{len(rewards)} rewards for {len(keys)} samples")
    ids = np.array([k[0] for k in keys], dtype=np.int64)
    indices = np.array([k[1] for k in keys], dtype=np.int64)
    return grouped_advantages_of(ids, indices, np.asarray(rewards, dtype=np.float32), estimator, group_size).tolist()
