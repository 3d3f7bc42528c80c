"""Columnar batches and the views workers resolve: the same samples come out as went in, whatever the shards."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from contract.sharding import split_evenly
from reward_workers.registry import RewardInput
from rl_actors.batch import PromptGroup, Sample
from rl_actors.columns import Chunks, LogprobColumns, RolloutMeta, SampleColumns, StepBatch, StepView, learner_shards

G = 3


def _engine(first_group: int, groups: int, version: int = 2) -> tuple[list[PromptGroup], list[Sample]]:
    prompts = [PromptGroup(g, g % 4, list(range(g, g + 5 + g % 3))) for g in range(first_group, first_group + groups)]
    texts = ["<think>t</think><answer>normal</answer>", "no tags", "<think>t</think><answer>anomalous</answer>"]
    samples = [
        Sample(p.group_id, i, p.prompt_index, p.prompt_ids, [7] * (i + 1), [-0.5 * (i + 1)] * (i + 1), texts[i],
               "length" if i == 1 else "stop", version)
        for p in prompts
        for i in range(G)
    ]  # fmt: skip
    return prompts, samples[::-1]  # any arrival order


def test_columns_give_back_every_sample_and_the_driver_metadata():
    groups, samples = _engine(10, 4)
    columns = SampleColumns.of(groups, samples)
    assert len(columns.prompt_offsets) == 5  # each prompt stored once, not once per sample
    assert [columns.sample(i) for i in range(len(columns))] == samples
    meta = columns.meta()
    assert meta.completion_tokens.tolist() == [len(s.completion_ids) for s in samples]
    assert meta.truncated.tolist() == [s.finish_reason == "length" for s in samples]
    assert meta.verdict.tolist() == [{2: 1, 1: -1, 0: 0}[s.sample_index] for s in samples]
    assert meta.well_formed.tolist() == [s.sample_index != 1 for s in samples]
    assert meta.probe == (samples[0].prompt_ids, samples[0].completion_ids) and meta.policy_version == 2


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_any_sharding_of_a_view_resolves_to_the_step_in_order(shards):
    engines = [_engine(0, 3), _engine(3, 1), _engine(4, 2)]  # three engines, uneven batches
    columns = [SampleColumns.of(*engine) for engine in engines]
    batch = StepBatch.of([(c.meta(), c) for c in columns])
    every = [s for _, samples in engines for s in samples]
    assert len(batch) == len(every) and batch.keys() == [(s.group_id, s.sample_index) for s in every]
    # reference log-probs chunked as two learner ranks computed them, advantages per position
    sizes = learner_shards(len(every), 2)
    bounds = split_evenly(len(every), 2)
    reference = Chunks(tuple(LogprobColumns.of([[float(p)] * 2 for p in range(s, e)]) for s, e in bounds), tuple(sizes))
    view = batch.view.with_reference(reference).with_advantages(np.arange(len(every)) / 10)
    resolved = []
    for start, end in split_evenly(len(view), shards):
        shard = view[start:end]
        assert len(shard) == end - start and len(shard.rollout.items) <= len(columns)  # only chunks it touches
        resolved += shard.samples()
    assert [(s.group_id, s.sample_index, s.completion_ids) for s in resolved] == [
        (s.group_id, s.sample_index, s.completion_ids) for s in every
    ]
    assert [s.ref_logprobs for s in resolved] == [(float(p), float(p)) for p in range(len(every))]
    assert [s.advantage for s in resolved] == pytest.approx([p / 10 for p in range(len(every))])


def test_reward_inputs_join_each_sample_with_its_groups_context():
    groups, samples = _engine(0, 2)
    groups = [
        replace(g, context=RewardInput(f"prompt {g.group_id}", "", "anomalous", "ref", None, (3,))) for g in groups
    ]
    columns = SampleColumns.of(groups, samples)  # the engine keeps each group's context beside its samples
    view = StepBatch.of([(columns.meta(), columns)]).view
    inputs = view[2:5].reward_inputs()
    assert [(i.prompt, i.completion, i.anomaly_lines) for i in inputs] == [
        (f"prompt {s.group_id}", s.text, (3,)) for s in samples[2:5]
    ]


def test_metadata_of_engines_concatenates_and_the_lag_is_the_oldest_version():
    metas = [SampleColumns.of(*_engine(0, 1, version=4)).meta(), SampleColumns.of(*_engine(1, 1, version=3)).meta()]
    joined = RolloutMeta.concat(metas)
    assert len(joined) == 2 * G and joined.policy_version == 3 and joined.probe == metas[0].probe


def test_a_view_is_cut_into_contiguous_shards_only():
    view = StepView(Chunks((), ()), 0, 0)
    with pytest.raises(TypeError):
        view[0]
