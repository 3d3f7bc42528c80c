"""The private vLLM and Ray names that `rl_actors/engine_internals.py` and `ray_internals.py` use exist."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from rl_actors.engine_internals import evict_adapter


def test_the_offline_engine_can_drop_a_lora():
    pytest.importorskip("vllm")
    from vllm import LLM
    from vllm.engine.llm_engine import LLMEngine

    assert "self.llm_engine" in inspect.getsource(LLM.__init__)
    assert callable(LLMEngine.remove_lora)


def test_evict_adapter_removes_by_id():
    removed = []
    evict_adapter(SimpleNamespace(llm_engine=SimpleNamespace(remove_lora=removed.append)), 4)
    assert removed == [4]


def test_ray_serialization_hooks_exist():
    from ray._private.serialization import SerializationContext

    assert callable(SerializationContext.serialize) and callable(SerializationContext.deserialize_objects)


def test_ray_settings_hooks_exist():
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    assert callable(Config.initialize) and callable(AuthenticationTokenLoader.instance().reset_cache)
    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool) and callable(ray_constants.env_bool)
