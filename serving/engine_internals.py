"""The only place serving/ touches private Ray Serve LLM and vLLM APIs; each use names what it relies on.

- `SkipNodeInit`: Ray Serve LLM's callback base (`ray.llm._internal`), to skip its per-node download step.
- `swap_adapter`: vLLM's `OpenAIServingModels` (`lora_requests`, `lora_id_counter`) and engine client
  (`add_lora`), reached through Ray's `VLLMEngine` (`_oai_models`, `_engine_client`).
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
