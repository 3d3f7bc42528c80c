"""The pure parts of checkpoint/resume: when to save, the trainer state round trip, RNGs, the latest complete one."""

from __future__ import annotations

import random

import pytest
import torch

from rl_actors.checkpoint import (
    STATE_FILE,
    TrainerState,
    capture_rng,
    checkpoint_dir,
    checkpoint_due,
    latest_checkpoint,
    prune_checkpoints,
    read_trainer_state,
    restore_rng,
    write_trainer_state,
)
from rl_actors.sampling import PromptSampler


def test_checkpoints_every_k_steps_and_after_the_last():
    assert [n for n in range(11) if checkpoint_due(n, 4, 10)] == [4, 8, 10]
    assert not any(checkpoint_due(n, None, 10) for n in range(11))


def test_rng_states_restore_what_was_drawn_since():
    state = capture_rng()
    drawn = (random.random(), torch.rand(3))
    restore_rng(state)
    assert random.random() == drawn[0] and torch.equal(torch.rand(3), drawn[1])


def test_trainer_state_round_trips_and_continues_the_sampler(tmp_path):
    sampler = PromptSampler(["normal"] * 6 + ["anomalous"] * 2, seed=1, anomalous_share=0.5)
    sampler.next(4)
    state = TrainerState(step=3, adapter_version=3, sampler=sampler.state_dict(), rng=capture_rng())
    write_trainer_state(checkpoint_dir(tmp_path, 3), state)
    loaded = read_trainer_state(checkpoint_dir(tmp_path, 3))
    assert loaded == state
    resumed = PromptSampler(["normal"] * 6 + ["anomalous"] * 2, seed=1, anomalous_share=0.5)
    resumed.load_state_dict(loaded.sampler)
    assert resumed.next(4) == sampler.next(4)


def test_latest_checkpoint_skips_interrupted_saves(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    state = TrainerState(step=0, adapter_version=0, sampler={}, rng={})
    for steps in (2, 10, 4):
        write_trainer_state(checkpoint_dir(tmp_path, steps), state)
    checkpoint_dir(tmp_path, 12).mkdir()  # killed mid-save: no trainer_state.json
    (tmp_path / "step-x").mkdir()
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 10)
    with pytest.raises(FileNotFoundError, match=STATE_FILE):
        read_trainer_state(checkpoint_dir(tmp_path, 12))


def test_pruning_keeps_the_newest_complete_checkpoints_and_any_save_in_progress(tmp_path):
    state = TrainerState(step=0, adapter_version=0, sampler={}, rng={})
    for steps in (2, 4, 6, 8):
        write_trainer_state(checkpoint_dir(tmp_path, steps), state)
    checkpoint_dir(tmp_path, 3).mkdir()  # an old interrupted save
    checkpoint_dir(tmp_path, 10).mkdir()  # a save in progress
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step-2", "step-3", "step-4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-10", "step-6", "step-8"]
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 8)


def test_metrics_of_redone_steps_are_dropped_on_resume(tmp_path):
    import json

    from rl_actors.metrics import MetricsLogger

    logger = MetricsLogger(tmp_path, "grpo")
    sft = MetricsLogger(tmp_path, "sft")
    sft.log(5, {"sft/loss": 1.0})
    for step in range(5):
        logger.log(step, {"reward/total": float(step), "prompts": [step, step + 1]})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"stage": "grpo", "step": 5, "rew')  # the kill cut the last line short
    assert logger.drop_from(3) == 3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in records] == [("sft", 5), ("grpo", 0), ("grpo", 1), ("grpo", 2)]
    assert records[1]["prompts"] == [0, 1]
    logger.close(), sft.close()
