"""The only place rl_actors touches private vLLM APIs; each use names what it relies on.

- `evict_adapter`: the offline `LLM`'s engine (`LLM.llm_engine`, vLLM's V1 `LLMEngine.remove_lora`); `LLM` has no
  public way to drop a LoRA from its cache.

Serving's private uses live in `serving/engine_internals.py` (rl_actors may not import serving);
`tests/rl_actors/test_private_apis.py` checks that every name used here exists in the installed vLLM.
"""

from __future__ import annotations

from typing import Any


def evict_adapter(llm: Any, lora_int_id: int) -> None:
    """Drop the LoRA cached under `lora_int_id` from an offline `vllm.LLM`, so its weights are never used again."""
    llm.llm_engine.remove_lora(lora_int_id)
