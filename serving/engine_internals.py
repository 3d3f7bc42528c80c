"""The only place logrl touches private Ray Serve LLM, Ray core and vLLM APIs; each use names what it relies on.

- `SkipNodeInit`: Ray Serve LLM's callback base (`ray.llm._internal`), to skip its per-node download step.
- `swap_adapter`: vLLM's `OpenAIServingModels` (`lora_requests`, `lora_id_counter`) and engine client
  (`add_lora`), reached through Ray's `VLLMEngine` (`_oai_models`, `_engine_client`).
- `ray_single_node_on_loopback`: Ray core's `ray_constants.ENABLE_RAY_CLUSTER`, read from
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` when Ray is imported.
- `bind_replica_grpc_to_node_address`: Ray Serve's replica module calls `add_port_to_grpc_server(server, "[::]:0")`
  for its inter-deployment gRPC server (`ray.serve._private.replica`, looked up at call time).
- `routes_added_on_build`: Ray Serve's private `__serve_build_asgi_app__` hook, through which `LLMServer` builds
  its FastAPI app (vLLM's OpenAI routes); a subclass adds its own routes to that app there.
- `engine_error_type` and `lora_module`: vLLM's deep `vllm.entrypoints` protocol models
  (`ErrorResponse`, `LoRAModulePath`).

`tests/serving/test_engine_internals.py` checks that every name used here exists in the installed Ray and vLLM.
"""

from __future__ import annotations

from typing import Any

from ray.llm._internal.common.callbacks.base import CallbackBase


class SkipNodeInit(CallbackBase):
    """Ray Serve LLM callback: skip the per-node download task, which only costs a worker start for a local folder."""

    async def on_before_node_init(self) -> None:
        self.ctx.run_init_node = False


async def swap_adapter(server: Any, name: str, path: str) -> int:
    """Serve LoRA `name` from `path` from now on, under a fresh `lora_int_id` (vLLM caches adapters by id).

    The new weights are loaded into the engine first; only then does `name` point at them, in one assignment, so
    a request sees either the old adapter or the new one, never a missing one. Requests already running keep the
    old id (vLLM reloads it from its folder if its cache slot was taken), so old folders must stay on disk.
    """
    from vllm.lora.request import LoRARequest

    models = server.engine._oai_models
    previous = models.lora_requests.get(name)
    request = LoRARequest(lora_name=name, lora_int_id=models.lora_id_counter.inc(1), lora_path=path)
    if previous is not None and getattr(previous, "base_model_name", None):
        request.base_model_name = previous.base_model_name
    await server.engine._engine_client.add_lora(request)
    models.lora_requests[name] = request
    return request.lora_int_id


def ray_single_node_on_loopback() -> None:
    """Put this process's Ray in single-node mode after the fact (node address 127.0.0.1, so every port it starts
    listens on loopback), as `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` does for a process that imports Ray after it is
    set. Ray reads the flag at each call that picks the node's address, so setting it before `ray.init` suffices."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def bind_replica_grpc_to_node_address() -> None:
    """Make this Serve replica's inter-deployment gRPC server listen on the node's address, not on every interface.

    Ray Serve 2.60 starts it on `[::]:0` in every replica, without Ray's token auth, and it unpickles what it is
    sent; on a local cluster the node's address is 127.0.0.1. Call it in the replica's constructor: Serve starts
    that server once the constructor has returned.
    """
    import ray
    from ray._common.network_utils import build_address
    from ray.serve._private import replica

    original = replica.add_port_to_grpc_server
    if getattr(original, "binds_node_address", False):
        return

    def add_port_on_node_address(server: Any, address: str) -> int:
        if address.startswith("[::]:"):
            address = build_address(ray.util.get_node_ip_address(), int(address.rsplit(":", 1)[1]))
        return original(server, address)

    add_port_on_node_address.binds_node_address = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = add_port_on_node_address


ASGI_APP_HOOK = "__serve_build_asgi_app__"  # Serve calls it on a deployment to get the app it serves


def routes_added_on_build(cls: type) -> type:
    """Class decorator for an `LLMServer` subclass: Serve builds its app as the base class does (vLLM's OpenAI
    routes), then the subclass's `add_routes(app)` adds its own routes and middleware to that app."""

    async def build(self: Any) -> Any:
        app = await getattr(super(cls, self), ASGI_APP_HOOK)()
        self.add_routes(app)
        return app

    setattr(cls, ASGI_APP_HOOK, build)
    return cls


def engine_error_type() -> type:
    """vLLM's `ErrorResponse`: what a chat call yields instead of a completion (base of Ray's and vLLM's models)."""
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse

    return ErrorResponse


def lora_module(name: str, path: str, base_model_name: str) -> Any:
    """vLLM's `LoRAModulePath`: a static adapter vLLM's frontend registers under `name` at start."""
    from vllm.entrypoints.openai.models.protocol import LoRAModulePath

    return LoRAModulePath(name=name, path=path, base_model_name=base_model_name)
