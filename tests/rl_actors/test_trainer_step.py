"""The driver's GRPO step over stand-in actor groups (no Ray): the typed batch flows rollout -> reward -> learner,
advantages follow group ids whatever order rollout workers return samples in, and a lost sample stops the step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import rl_actors.trainer as trainer_module
from reward_workers.config import RewardConfig
from rl_actors.algos import get_advantage
from rl_actors.batch import Sample
from rl_actors.columns import SampleColumns, StepView
from rl_actors.config import AlgoConfig, AugmentConfig, RolloutConfig, TrainConfig
from rl_actors.prompt_source import GroupBatch, PromptSource
from rl_actors.sampling import PromptSampler
from rl_actors.trainer import GRPOTrainer

G, P = 4, 3


def reward_of(group_id: int, sample_index: int) -> float:
    return float(group_id % 5) + 0.25 * sample_index**2


class FakeRollout:
    """Two 'workers' whose samples come back interleaved across groups; `drop` loses one sample. Sampling uses the
    adapter the engines held when it started; `events` records starts (and the learner's updates) in order."""

    def __init__(self, drop: tuple[int, int] | None = None):
        self.drop, self.replaced = drop, 0
        self.version, self.events = 0, []

    def start_sharded(self, method: str, batch: GroupBatch, seed: int):
        assert method == "generate_columns" and isinstance(batch, GroupBatch)  # numbers, not prompts, leave the driver
        groups = self.source.groups(batch)  # as the engines build them
        self.events.append(("sample", groups[0].group_id // P, self.version))
        return groups, self.version

    def __len__(self) -> int:
        return 2

    def call(self, method: str, on_replace=None) -> list:
        assert on_replace is not None  # a sleeping or waking engine that died is replaced too
        self.events.append((method, self.version))
        return [None, None]

    def wait(self, pending, on_replace=None) -> list[tuple]:
        """Each worker's (metadata, columns): the columns themselves here, where Ray would pass a reference."""
        assert on_replace is not None  # a rollout engine that dies mid-step is replaced, not fatal
        groups, version = pending
        samples = [
            Sample(g.group_id, i, g.prompt_index, g.prompt_ids, [9, i], [-0.1] * 2, f"{g.group_id}:{i}", None, version)
            for g in groups
            for i in range(G)
        ]
        samples = samples[1::2] + samples[::2][::-1]
        samples = [s for s in samples if (s.group_id, s.sample_index) != self.drop]
        half = len(samples) // 2
        columns = [SampleColumns.of(groups, part) for part in (samples[:half], samples[half:])]
        return [(c.meta(), c) for c in columns]


class FakeLearner:
    def __init__(self, events: list):
        self.received: list[Sample] = []
        self.events = events

    def call_sharded(self, method: str, view):
        assert method == "grpo_step" and isinstance(view, StepView)  # references, not samples, leave the driver
        self.received = view.samples()  # as the learner ranks resolve their shards
        samples = self.received
        self.events.append(("learn", samples[0].group_id // P))
        return [{"actor/loss": 0.5}, {"actor/loss": 1.5}]


def _trainer(monkeypatch, rollout: FakeRollout, rollout_cfg: RolloutConfig | None = None, **train) -> GRPOTrainer:
    def score(workers, view, timeout_s, replace):  # the reward pool: a reward read off each completion's text
        inputs = view.reward_inputs()  # as the reward actors resolve their shards
        assert {i.prompt for i in inputs} <= {"p0", "p1"}  # each sample with its group's row
        total = [reward_of(*map(int, i.completion.split(":"))) for i in inputs]
        return {"total": np.array(total), "answer": np.ones(len(inputs))}, {}

    trainer = GRPOTrainer.__new__(GRPOTrainer)  # no actors: stand-ins for the three groups
    trainer.cfg = SimpleNamespace(
        train=TrainConfig(prompts_per_step=P, **train),
        rollout=rollout_cfg or RolloutConfig(group_size=G),
        algo=AlgoConfig(kl_coef=0.0),
        reward=RewardConfig(),
        data=SimpleNamespace(format="bgl"),
        model=SimpleNamespace(max_model_len=512),
    )
    trainer.rows = [{"prompt": f"p{i}", "label": "normal", "reference": "r"} for i in range(2)]
    encode = {"p0": [1, 2], "p1": [3, 4]}.__getitem__  # the engines encode a prompt when it is drawn
    trainer.source = rollout.source = PromptSource(trainer.rows, "unused", "bgl", AugmentConfig(), 0, 512, encode)
    trainer.label_codes = np.zeros(2, dtype=np.int8)  # both rows normal
    trainer.sampler = PromptSampler(["normal", "normal"], seed=0)  # 3 prompts from 2: one is drawn twice
    trainer.rollout, trainer.learner, trainer.reward = (
        rollout,
        FakeLearner(rollout.events),
        SimpleNamespace(workers=[], replaced=0, replace=None),
    )
    trainer.version, trainer.ahead = 0, None

    def sync_adapter(version: int) -> None:
        trainer.version = rollout.version = version

    trainer.sync_adapter, trainer.sync_check = sync_adapter, lambda probe: 0.0
    trainer.apply_scale, trainer.probe = dict, None  # no control actor: the engine count never changes
    monkeypatch.setattr(trainer_module, "score_columns_with_pool", score)
    return trainer


def test_the_learner_gets_advantages_grouped_by_id(monkeypatch):
    trainer = _trainer(monkeypatch, FakeRollout())
    metrics = trainer.step(2)
    received = trainer.learner.received
    assert len(received) == P * G and all(isinstance(s, Sample) for s in received)
    assert {s.group_id for s in received} == {6, 7, 8}  # step 2 of 3 prompts: ids unique over the run
    assert len({s.prompt_index for s in received}) == 2  # one prompt drawn twice is two groups
    estimator = get_advantage(AlgoConfig().advantage)
    for group_id in (6, 7, 8):
        group = sorted((s for s in received if s.group_id == group_id), key=lambda s: s.sample_index)
        rewards = [reward_of(group_id, i) for i in range(G)]
        assert [s.advantage for s in group] == pytest.approx(estimator(torch.tensor(rewards), G).tolist())
    assert metrics["actor/loss"] == 1.0 and metrics["adapter/version"] == 3
    assert metrics["reward/answer"] == 1.0 and metrics["rollout/completion_tokens"] == 2
    assert metrics["rollout/policy_lag"] == 0  # sampled with the adapter the update started from


def test_overlapped_rollout_samples_the_next_batch_during_the_update_one_version_behind(monkeypatch):
    steps = 4
    plain = _trainer(monkeypatch, FakeRollout(), steps=steps)
    plain_metrics = [plain.step(k) for k in range(steps)]
    overlap = _trainer(monkeypatch, FakeRollout(), steps=steps, overlap_rollout=True)
    overlap_metrics = []
    for k in range(steps):
        overlap_metrics.append(overlap.step(k))
        if k == 0:  # a checkpoint now saves the sampler as it was before the next batch was drawn ahead
            assert overlap.ahead.sampler_state == plain_cursor_after_one_step(monkeypatch, steps)
    # Step k+1's batch is drawn and sampled before step k's update, with the adapter step k started from.
    assert overlap.rollout.events == [
        ("sample", 0, 0),
        ("sample", 1, 0),
        ("learn", 0),
        ("sample", 2, 1),
        ("learn", 1),
        ("sample", 3, 2),
        ("learn", 2),
        ("learn", 3),  # nothing is sampled past the last step
    ]
    assert [m["rollout/policy_lag"] for m in overlap_metrics] == [0, 1, 1, 1]
    assert [m["rollout/policy_lag"] for m in plain_metrics] == [0, 0, 0, 0]
    # The same prompt batches, in the same order, as without overlap.
    assert [m["prompts"] for m in overlap_metrics] == [m["prompts"] for m in plain_metrics]
    assert overlap.ahead is None and overlap_metrics[-1]["adapter/version"] == steps


def plain_cursor_after_one_step(monkeypatch, steps: int) -> dict:
    trainer = _trainer(monkeypatch, FakeRollout(), steps=steps)
    trainer.step(0)
    return trainer.sampler.state_dict()


def test_a_lost_sample_stops_the_step_before_the_update(monkeypatch):
    trainer = _trainer(monkeypatch, FakeRollout(drop=(1, 2)))
    with pytest.raises(ValueError, match=r"group 1: expected samples 0..3, missing \[2\]"):
        trainer.step(0)
    assert trainer.learner.received == []


def test_colocated_engines_sleep_through_the_update_and_wake_before_the_sync(monkeypatch):
    colocated = RolloutConfig(
        group_size=G, colocate_with_learner=True, num_gpus_per_worker=0.5, gpu_memory_utilization=0.4
    )
    trainer = _trainer(monkeypatch, FakeRollout(), colocated, steps=2)
    metrics = [trainer.step(k) for k in range(2)]
    assert trainer.rollout.events == [
        ("sample", 0, 0), ("sleep", 0), ("learn", 0), ("wake_up", 0),  # then the sync to v1
        ("sample", 1, 1), ("sleep", 1), ("learn", 1), ("wake_up", 1),
    ]  # fmt: skip
    assert all("time/rollout_sleep" in m and "time/rollout_wake" in m for m in metrics)
    plain = _trainer(monkeypatch, FakeRollout(), steps=1)
    plain.step(0)
    assert [e[0] for e in plain.rollout.events] == ["sample", "learn"]  # not colocated: no sleep
