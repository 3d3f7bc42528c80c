"""Config loading: the quickstart file is valid; unknown keys and bad values fail naming the field."""

from __future__ import annotations

import pytest

from cluster.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config


def _raw(**sections):
    raw = {"data": {"paths": ["x.log"]}, "model": {"path": "m"}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return raw


def test_quickstart_config_loads():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.data.format == "bgl" and cfg.rollout.group_size >= 2
    assert set(cfg.reward.weights) >= {"format", "answer", "grounding"}


def test_unknown_key_names_the_field():
    with pytest.raises(ConfigError, match=r"rollout\.group_sise"):
        parse_config(_raw(rollout={"group_sise": 4}))


def test_bad_value_names_the_field():
    with pytest.raises(ConfigError, match=r"learner\.zero_stage"):
        parse_config(_raw(learner={"zero_stage": 7}))


def test_missing_required_section_is_named():
    with pytest.raises(ConfigError, match=r"^invalid config.*\n\s+model: Field required"):
        parse_config({"data": {"paths": ["x.log"]}})


def test_overrides_apply_and_validate(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {paths: [a.log]}\nmodel: {path: m}\n")
    cfg = load_config(path, ["train.steps=7", "reward.weights={format: 1.0}"])
    assert cfg.train.steps == 7 and cfg.reward.weights == {"format": 1.0}
    with pytest.raises(ConfigError, match=r"train\.steps"):
        load_config(path, ["train.steps=-1"])
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(path, ["train.steps"])


def test_unregistered_reward_name_fails_at_scorer_construction():
    from reward_workers.scorer import RewardScorer

    cfg = parse_config(_raw(reward={"weights": {"format": 1.0, "vibes": 1.0}}))
    with pytest.raises(KeyError, match="vibes"):
        RewardScorer(cfg.reward)


def test_zero_stage_3_is_accepted_and_reaches_the_deepspeed_config():
    from rl_actors.learner import deepspeed_config

    cfg = parse_config(_raw(learner={"zero_stage": 3, "zero3_param_persistence_threshold": 0})).learner
    assert deepspeed_config(cfg, 1)["zero_optimization"] == {"stage": 3, "stage3_param_persistence_threshold": 0}
    default = parse_config(_raw(learner={"zero_stage": 3})).learner
    assert deepspeed_config(default, 1)["zero_optimization"] == {"stage": 3}  # DeepSpeed's own default
    assert deepspeed_config(parse_config(_raw(learner={"zero_stage": 2})).learner, 1)["zero_optimization"] == {
        "stage": 2
    }


def test_gpu_cluster_config_is_zero2_bf16_with_gradient_checkpointing():
    cfg = load_config(DEFAULT_CONFIG.parent / "gpu-cluster.yaml")
    assert (cfg.learner.zero_stage, cfg.learner.dtype, cfg.learner.gradient_checkpointing) == (2, "bfloat16", True)
    assert cfg.learner.num_gpus_per_worker > 0 and cfg.rollout.num_gpus_per_worker > 0


def test_each_role_has_its_own_placement_strategy():
    roles = {"rollout": "SPREAD", "learner": "STRICT_PACK", "reward": "STRICT_SPREAD"}
    cfg = load_config(DEFAULT_CONFIG, [f"{role}.placement_strategy={value}" for role, value in roles.items()])
    assert {role: getattr(cfg, role).placement_strategy for role in roles} == roles
    with pytest.raises(ConfigError, match="reward.placement_strategy"):
        load_config(DEFAULT_CONFIG, ["reward.placement_strategy=ANYWHERE"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rollout.num_workers=2"], "one rollout engine per learner rank"),
        (["rollout.num_gpus_per_worker=0.6", "learner.num_gpus_per_worker=0.5"], "at most 1 \\(got 1.1"),
        (
            ["rollout.num_gpus_per_worker=0.5", "learner.num_gpus_per_worker=0.5", "rollout.tensor_parallel_size=2"],
            "num_gpus_per_worker: 2",  # refused already by the rollout section (TP needs whole GPUs)
        ),
    ],
)
def test_colocation_that_cannot_fit_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(DEFAULT_CONFIG, ["rollout.colocate_with_learner=true", *overrides])
    assert "colocate_with_learner" in str(err.value) or "tensor_parallel" in str(err.value)


def test_colocation_sharing_one_gpu_by_halves_is_accepted():
    cfg = load_config(
        DEFAULT_CONFIG,
        ["rollout.colocate_with_learner=true", "rollout.num_gpus_per_worker=0.5", "learner.num_gpus_per_worker=0.5"],
    )
    assert cfg.rollout.colocate_with_learner


def test_every_shipped_config_keeps_the_asymmetric_payoff():
    """Per-group std scaling maps a missed anomaly's group and a false alarm's to the same advantages."""
    from pathlib import Path

    for path in sorted((Path(DEFAULT_CONFIG).parent).glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.algo.advantage in ("grpo_no_std", "grpo_batch_std"), path.name
        assert cfg.reward.payoffs.fn < cfg.reward.payoffs.fp, path.name
