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
        (
            [
                "rollout.num_gpus_per_worker=0.6",
                "learner.num_gpus_per_worker=0.5",
                "rollout.gpu_memory_utilization=0.5",
            ],
            "at most 1 \\(got 1.1",
        ),
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


HALVES = ["rollout.colocate_with_learner=true", "rollout.num_gpus_per_worker=0.5", "learner.num_gpus_per_worker=0.5"]


def test_colocation_sharing_one_gpu_by_halves_is_accepted():
    cfg = load_config(DEFAULT_CONFIG, [*HALVES, "rollout.gpu_memory_utilization=0.45"])
    assert cfg.rollout.colocate_with_learner
    assert cfg.rollout.sleeps  # colocated on GPUs: the engines sleep while the learner works, by default
    two = load_config(DEFAULT_CONFIG, [*HALVES, "rollout.gpu_memory_utilization=0.45", "rollout.num_workers=2",
                                       "learner.num_workers=2"])  # fmt: skip
    assert two.learner.num_workers == 2  # each bundle holds one whole GPU: one rank per GPU


@pytest.mark.parametrize(
    ("overrides", "field", "numbers"),
    [
        # vLLM's start-up check wants 0.85 of a GPU free after the learner took its half
        (HALVES, "rollout.gpu_memory_utilization", ["0.85", "0.5"]),
        (["rollout.num_gpus_per_worker=0.25"], "rollout.gpu_memory_utilization", ["0.85", "0.25"]),
        # two NCCL ranks may land on one GPU
        (["learner.num_workers=2", "learner.num_gpus_per_worker=0.5"], "learner.num_gpus_per_worker", ["0.5"]),
        (
            [
                *HALVES[:1],
                "rollout.num_gpus_per_worker=0.25",
                "learner.num_gpus_per_worker=0.25",
                "rollout.num_workers=2",
                "learner.num_workers=2",
                "rollout.gpu_memory_utilization=0.2",
            ],
            "learner.num_gpus_per_worker",
            ["0.25"],
        ),  # fmt: skip
        (["learner.num_gpus_per_worker=2"], "learner.num_gpus_per_worker", ["2"]),
        (["rollout.num_gpus_per_worker=2"], "rollout.num_gpus_per_worker", ["2"]),
        (["model.lora_rank=1024"], "model.lora_rank", ["512"]),
        (["rollout.sleep_during_update=true"], "rollout.sleep_during_update", []),
        (
            [*HALVES, "rollout.gpu_memory_utilization=0.45", "train.overlap_rollout=true"],
            "train.overlap_rollout",
            [],
        ),
        (["train.placement_timeout_s=0"], "train.placement_timeout_s", []),
    ],
)
def test_accepted_but_broken_gpu_settings_are_refused_naming_the_field(overrides, field, numbers):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_CONFIG, overrides)
    (line,) = str(err.value).splitlines()[1:]
    assert line.strip().startswith(f"{field}:"), line
    assert all(n in line for n in numbers), (line, numbers)


def test_the_gpu_cluster_config_stays_valid_and_unchanged_by_the_checks():
    cfg = load_config(DEFAULT_CONFIG.parent / "gpu-cluster.yaml")
    assert not cfg.rollout.sleeps and cfg.train.placement_timeout_s > 0


def test_every_shipped_config_keeps_the_asymmetric_payoff():
    """Per-group std scaling maps a missed anomaly's group and a false alarm's to the same advantages."""
    from pathlib import Path

    for path in sorted((Path(DEFAULT_CONFIG).parent).glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.algo.advantage in ("grpo_no_std", "grpo_batch_std"), path.name
        assert cfg.reward.payoffs.fn < cfg.reward.payoffs.fp, path.name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algo.old_logprobs=rollout"], "old_logprobs: learner"),
        (["algo.tis_cap=2.0"], "tis_cap: null"),
    ],
)
def test_grounded_rollouts_refuse_the_engines_masked_logprobs(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(DEFAULT_CONFIG, ["rollout.grounded=true", *overrides])
    assert "rollout.grounded" in str(err.value)
    assert load_config(DEFAULT_CONFIG, ["rollout.grounded=true"]).rollout.grounded


def test_spread_validation_is_for_chronological_splits_only():
    assert parse_config(_raw(data={"validation_draw": "spread"})).data.validation_draw == "spread"
    with pytest.raises(ConfigError, match=r"data\.validation_draw spread applies to split chronological"):
        parse_config(_raw(data={"validation_draw": "spread", "split": "template_holdout"}))
    with pytest.raises(ConfigError, match=r"data\.validation_draw"):
        parse_config(_raw(data={"validation_draw": "middle"}))
