"""The private Ray and vLLM names `serving/engine_internals.py` relies on exist in the installed versions.

An upgrade that moves one fails here, in seconds, instead of in a Serve end-to-end run. Skipped only where Ray's
LLM extra or vLLM is not installed.
"""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("ray.llm")
pytest.importorskip("vllm")


def test_serve_llm_hooks_exist():
    from ray.llm._internal.common.callbacks.base import CallbackBase
    from ray.serve.llm import LLMServer

    from serving.engine_internals import ASGI_APP_HOOK

    assert hasattr(CallbackBase, "on_before_node_init")
    assert callable(getattr(LLMServer, ASGI_APP_HOOK))


def test_the_engine_attributes_swap_adapter_reaches_exist():
    from ray.llm._internal.serve.engines.vllm import vllm_engine
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels

    engine_source = inspect.getsource(vllm_engine)
    assert "self._oai_models" in engine_source and "self._engine_client" in engine_source
    models_source = inspect.getsource(OpenAIServingModels)
    assert "self.lora_requests" in models_source and "self.lora_id_counter" in models_source


def test_ray_core_and_serve_internals_exist():
    from ray._common.network_utils import build_address
    from ray._private import ray_constants
    from ray.serve._private import replica

    assert hasattr(ray_constants, "ENABLE_RAY_CLUSTER")
    assert callable(replica.add_port_to_grpc_server) and callable(build_address)


def test_vllm_protocol_models_build():
    from serving.engine_internals import engine_error_type, lora_module

    assert engine_error_type().__name__ == "ErrorResponse"
    module = lora_module("logrl-detector", "/adapters/v3", "base")
    assert (module.name, module.path, module.base_model_name) == ("logrl-detector", "/adapters/v3", "base")


def test_routes_are_added_to_the_app_the_base_class_builds():
    import asyncio

    from serving.engine_internals import ASGI_APP_HOOK, routes_added_on_build

    class Base:
        async def __serve_build_asgi_app__(self):
            return ["openai"]

    assert ASGI_APP_HOOK == "__serve_build_asgi_app__"

    @routes_added_on_build
    class Server(Base):
        def add_routes(self, app):
            app.append("detect")

    assert asyncio.run(getattr(Server(), ASGI_APP_HOOK)()) == ["openai", "detect"]
