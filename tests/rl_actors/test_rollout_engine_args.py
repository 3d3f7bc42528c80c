"""vLLM arguments of a rollout engine, and the tensor-parallel settings the config accepts (no vLLM started)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rl_actors.batch import PromptGroup
from rl_actors.config import ModelConfig, RolloutConfig
from rl_actors.rollout import engine_args, request_seeds


def test_a_single_gpu_or_cpu_engine_leaves_the_executor_to_vllm():
    args = engine_args("m", ModelConfig(path="m", lora_rank=8), RolloutConfig(), seed=3)
    assert "distributed_executor_backend" not in args
    assert (args["tensor_parallel_size"], args["max_lora_rank"], args["seed"]) == (1, 8, 3)
    assert args["logprobs_mode"] == "processed_logprobs"


def test_tensor_parallel_engines_use_their_own_worker_processes_on_the_actors_gpus():
    cfg = RolloutConfig(tensor_parallel_size=2, num_gpus_per_worker=2)
    args = engine_args("m", ModelConfig(path="m"), cfg, seed=0)
    assert (args["tensor_parallel_size"], args["distributed_executor_backend"]) == (2, "mp")


@pytest.mark.parametrize("gpus", [0, 1, 4])
def test_tensor_parallelism_needs_as_many_gpus_per_actor(gpus):
    with pytest.raises(ValidationError, match="num_gpus_per_worker: 2"):
        RolloutConfig(tensor_parallel_size=2, num_gpus_per_worker=gpus)


@pytest.mark.parametrize(("rank", "reserved"), [(1, 8), (4, 8), (8, 8), (12, 16), (48, 64), (300, 320), (512, 512)])
def test_the_engine_reserves_the_next_lora_rank_vllm_accepts(rank, reserved):
    args = engine_args("m", ModelConfig(path="m", lora_rank=rank), RolloutConfig(), seed=0)
    assert args["max_lora_rank"] == reserved


def test_sleep_mode_is_enabled_only_where_the_engines_sleep():
    assert "enable_sleep_mode" not in engine_args("m", ModelConfig(path="m"), RolloutConfig(), seed=0)
    colocated = RolloutConfig(colocate_with_learner=True, num_gpus_per_worker=0.5, gpu_memory_utilization=0.4)
    assert engine_args("m", ModelConfig(path="m"), colocated, seed=0)["enable_sleep_mode"] is True
    off = colocated.model_copy(update={"sleep_during_update": False})
    assert "enable_sleep_mode" not in engine_args("m", ModelConfig(path="m"), off, seed=0)


def test_each_prompt_group_gets_its_own_sampling_seed():
    groups = [PromptGroup(g, 7, [1, 2]) for g in range(64)]  # one prompt drawn 64 times: 64 groups
    seeds = request_seeds(5, groups)
    assert len(set(seeds)) == 64 and all(0 <= s < 2**31 for s in seeds)
    assert seeds == request_seeds(5, groups)  # a rerun of the step samples the same
    assert set(seeds).isdisjoint(request_seeds(6, groups))  # another step: others


def test_grounded_rollouts_sample_each_group_under_its_own_prompts_evidence_grammar():
    from contract.evidence_grammar import grounded_grammar
    from reward_workers.registry import RewardInput
    from rl_actors.rollout import grounded_constraint

    prompt = "L1 KERNEL INFO: instruction cache parity error corrected\nL2 KERNEL FATAL: data TLB error interrupt"
    group = PromptGroup(7, 3, [1, 2, 3], RewardInput(prompt, "", "anomalous", "ref", None, (2,)))
    assert grounded_constraint(group).grammar == grounded_grammar(prompt)
    with pytest.raises(ValueError, match="no prompt text"):  # bare prompt ids (sync checks, serving): no grammar
        grounded_constraint(PromptGroup(7, 3, [1, 2, 3]))
