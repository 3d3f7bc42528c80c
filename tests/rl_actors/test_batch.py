"""The typed rollout batch: samples name their group, advantages group by id (not arrival order), and a lost or
duplicated sample is an error naming its group. Pure: no Ray, no vLLM."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rl_actors.algos import ADVANTAGES, get_advantage
from rl_actors.batch import PromptGroup, RolloutBatch, Sample, group_order, group_positions, grouped_advantages_of
from rl_actors.rollout import samples_from_outputs

G = 4


def _sample(group_id: int, sample_index: int, reward: float | None = None) -> Sample:
    return Sample(
        group_id=group_id,
        sample_index=sample_index,
        prompt_index=group_id % 3,  # prompts repeat across groups: the group id, not the prompt, is the group
        prompt_ids=[1, 2, group_id],
        completion_ids=[5 + sample_index],
        rollout_logprobs=[-0.5],
        reward=reward,
    )


def _batch(rewards: list[list[float]]) -> RolloutBatch:
    return RolloutBatch.of([_sample(10 + g, i, r) for g, group in enumerate(rewards) for i, r in enumerate(group)])


REWARDS = [[1.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0], [2.0, 0.0, -1.5, 0.0], [0.5, -0.5, 1.0, 1.0]]


@pytest.mark.parametrize("estimator", sorted(ADVANTAGES))
def test_advantages_do_not_depend_on_arrival_order(estimator: str) -> None:
    ordered = _batch(REWARDS).with_advantages(estimator, G)
    expected = get_advantage(estimator)(torch.tensor([r for group in REWARDS for r in group]), G).tolist()
    assert [s.advantage for s in ordered] == pytest.approx(expected)
    by_key = {(s.group_id, s.sample_index): s.advantage for s in ordered}
    for seed in range(5):
        samples = list(_batch(REWARDS))
        random.Random(seed).shuffle(samples)  # interleaved across groups, as N workers might return them
        shuffled = RolloutBatch.of(samples).with_advantages(estimator, G)
        assert [(s.group_id, s.sample_index) for s in shuffled] == [(s.group_id, s.sample_index) for s in samples]
        assert {(s.group_id, s.sample_index): s.advantage for s in shuffled} == by_key


def test_arrival_order_used_to_mix_groups() -> None:
    # What grouping by position did: two groups arriving interleaved were centred as [g0, g1, g0, g1] blocks.
    samples = [_sample(0, 0, 1.0), _sample(1, 0, 5.0), _sample(0, 1, 0.0), _sample(1, 1, 5.0)]
    by_id = RolloutBatch.of(samples).with_advantages("grpo_no_std", 2)
    assert [s.advantage for s in by_id] == pytest.approx([0.5, 0.0, -0.5, 0.0])
    by_position = get_advantage("grpo_no_std")(torch.tensor([1.0, 5.0, 0.0, 5.0]), 2).tolist()
    assert by_position != pytest.approx([0.5, 0.0, -0.5, 0.0])


def test_a_missing_sample_is_an_error_naming_its_group() -> None:
    samples = [s for s in _batch(REWARDS) if (s.group_id, s.sample_index) != (12, 3)]
    with pytest.raises(ValueError, match=r"group 12: expected samples 0..3, missing \[3\]"):
        RolloutBatch.of(samples).with_advantages("grpo_no_std", G)


def test_a_duplicated_sample_is_an_error_naming_its_group() -> None:
    samples = list(_batch(REWARDS))
    samples.insert(5, samples[1])
    with pytest.raises(ValueError, match="group 10: sample 1 arrived twice"):
        RolloutBatch.of(samples).with_advantages("grpo_no_std", G)


def test_a_sample_index_out_of_range_is_an_error_naming_its_group() -> None:
    samples = [s if (s.group_id, s.sample_index) != (11, 3) else replace(s, sample_index=7) for s in _batch(REWARDS)]
    with pytest.raises(ValueError, match=r"group 11: .*missing \[3\], unexpected \[7\]"):
        RolloutBatch.of(samples).groups(G)


def test_a_lost_or_unasked_group_is_an_error_naming_it() -> None:
    batch = _batch(REWARDS)
    assert list(batch.groups(G, expected=[13, 12, 11, 10])) == [10, 11, 12, 13]
    with pytest.raises(ValueError, match=r"groups \[14\] are missing, groups \[\] were not asked for"):
        batch.groups(G, expected=[10, 11, 12, 13, 14])
    with pytest.raises(ValueError, match=r"groups \[\] are missing, groups \[13\] were not asked for"):
        batch.groups(G, expected=[10, 11, 12])


def test_groups_are_ordered_by_sample_index() -> None:
    samples = [_sample(7, 1), _sample(3, 1), _sample(7, 0), _sample(3, 0)]
    assert RolloutBatch.of(samples).groups(2) == {3: [3, 1], 7: [2, 0]}


def test_advantages_need_every_reward() -> None:
    batch = RolloutBatch.of([_sample(0, 0, 1.0), _sample(0, 1)])
    with pytest.raises(ValueError, match=r"without a reward.*\(0, 1\)"):
        batch.with_advantages("grpo", 2)
    with pytest.raises(ValueError, match="1 rewards for 2 samples"):
        batch.with_rewards([1.0])
    with pytest.raises(ValueError, match="1 reference logprobs for 2 samples"):
        batch.with_ref_logprobs([None])


def test_rewards_and_reference_logprobs_attach_in_batch_order_without_mutating() -> None:
    batch = RolloutBatch.of([_sample(0, 1), _sample(0, 0)])
    scored = batch.with_rewards([2.0, 1.0]).with_ref_logprobs([(-1.0,), (-2.0,)])
    assert [(s.sample_index, s.reward, s.ref_logprobs) for s in scored] == [(1, 2.0, (-1.0,)), (0, 1.0, (-2.0,))]
    assert all(s.reward is None and s.ref_logprobs is None for s in batch)
    assert len(RolloutBatch.of([]).with_advantages("grpo", G)) == 0


def test_batch_pickles_for_ray() -> None:
    batch = _batch(REWARDS).with_advantages("grpo_batch_std", G)
    assert pickle.loads(pickle.dumps(batch)) == batch


def test_a_prompt_index_pair_is_a_group_named_by_its_index() -> None:
    assert PromptGroup.coerce((3, (1, 2))) == PromptGroup(3, 3, [1, 2])
    group = PromptGroup(9, 3, [1, 2])
    assert PromptGroup.coerce(group) is group


def _vllm_output(texts: list[str]) -> SimpleNamespace:
    completions = []
    for k, text in enumerate(texts):
        ids = [100 + k, 200 + k]
        logprobs = [{tok: SimpleNamespace(logprob=-0.1 * (k + j + 1))} for j, tok in enumerate(ids)]
        completions.append(SimpleNamespace(token_ids=ids, logprobs=logprobs, text=text, finish_reason="stop"))
    return SimpleNamespace(outputs=completions)


def test_rollout_outputs_become_samples_naming_group_and_index() -> None:
    groups = [PromptGroup(40, 2, [7, 8]), PromptGroup(41, 2, [7, 8])]  # the same prompt drawn twice
    samples = samples_from_outputs(groups, [_vllm_output(["a", "b"]), _vllm_output(["c", "d"])])
    assert [(s.group_id, s.sample_index, s.prompt_index, s.text) for s in samples] == [
        (40, 0, 2, "a"),
        (40, 1, 2, "b"),
        (41, 0, 2, "c"),
        (41, 1, 2, "d"),
    ]
    assert samples[1].prompt_ids == [7, 8] and samples[1].completion_ids == [101, 201]
    assert samples[1].rollout_logprobs == pytest.approx([-0.2, -0.3])
    assert RolloutBatch.of(samples).groups(2, expected=[40, 41]) == {40: [0, 1], 41: [2, 3]}
    with pytest.raises(ValueError, match="1 vLLM outputs for 2 prompt groups"):
        samples_from_outputs(groups, [_vllm_output(["a"])])


def _arrays(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([s.group_id for s in samples]), np.array([s.sample_index for s in samples])


@pytest.mark.parametrize("seed", range(6))
def test_the_vectorised_grouping_orders_as_group_positions_does(seed: int) -> None:
    samples = list(_batch(REWARDS))
    random.Random(seed).shuffle(samples)
    expected = [p for positions in group_positions([(s.group_id, s.sample_index) for s in samples], G).values()
                for p in positions]  # fmt: skip
    assert group_order(*_arrays(samples), G, expected=[13, 10, 12, 11]).tolist() == expected
    assert group_order(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), G).tolist() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: [x for x in s if (x.group_id, x.sample_index) != (12, 3)], r"group 12: .*missing \[3\]"),
        (lambda s: s[:5] + [s[1]] + s[5:], "group 10: sample 1 arrived twice"),
        (lambda s: [replace(x, sample_index=7) if (x.group_id, x.sample_index) == (11, 3) else x for x in s],
         r"group 11: .*missing \[3\], unexpected \[7\]"),
        (lambda s: s + [replace(x, group_id=14) for x in s[:G]], r"groups \[\] are missing, groups \[14\] were not"),
        (lambda s: [x for x in s if x.group_id != 13], r"groups \[13\] are missing"),
    ],
)  # fmt: skip
def test_the_vectorised_grouping_raises_the_named_errors(change, message: str) -> None:
    samples = change(list(_batch(REWARDS)))
    with pytest.raises(ValueError, match=message):
        group_order(*_arrays(samples), G, expected=[10, 11, 12, 13])


def test_array_advantages_match_the_sample_path() -> None:
    samples = list(_batch(REWARDS))
    random.Random(1).shuffle(samples)
    rewards = np.array([s.reward for s in samples])
    out = grouped_advantages_of(*_arrays(samples), rewards, "grpo", G)
    assert out.dtype == np.float64 and out.tolist() == [
        s.advantage for s in RolloutBatch.of(samples).with_advantages("grpo", G)
    ]
