"""vLLM arguments of a rollout engine, and the tensor-parallel settings the config accepts (no vLLM started)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rl_actors.config import ModelConfig, RolloutConfig
from rl_actors.rollout import engine_args


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
