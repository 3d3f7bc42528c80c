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
