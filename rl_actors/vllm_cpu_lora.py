"""Grouped LoRA matmuls for vLLM's CPU backend: one matmul per adapter in a batch, not one weight copy per token.

vLLM 0.32's CPU punica ops (`vllm.lora.ops.torch_ops.lora_ops.bgmv_*`, also bound by name in
`vllm.lora.punica_wrapper.punica_cpu`) gather every token's (out x rank) LoRA matrix before an einsum. With 32
decoding sequences that copy dominates a step (profiled: ~60% of a SmolLM2 decode step). A rollout batch uses one
adapter, so the same product is a single matmul. This is the only module that touches those deep vLLM paths; it
was written against the vLLM version the project pins, and `tests/rl_actors/test_vllm_cpu_lora.py` checks it
against vLLM's own ops.
"""

from __future__ import annotations

import torch

_ORIGINAL: dict[str, object] = {}
_PATCHED_NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def lora_matmul(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Row b of the result is `inputs[b] @ weights[indices[b]].T` (weights: (L, out, in) or (L, 1, out, in))."""
    if weights.dim() == 4:
        weights = weights.squeeze(dim=1)
    x = inputs.to(dtype=dtype)
    first = indices[0]
    if bool((indices == first).all()):
        return x @ weights[first].to(dtype=dtype).T
    out = x.new_empty((x.shape[0], weights.shape[1]))
    for index in torch.unique(indices).tolist():
        rows = indices == index
        out[rows] = x[rows] @ weights[index].to(dtype=dtype).T
    return out


def _can_group(inputs: torch.Tensor, indices: torch.Tensor) -> bool:
    return indices.dim() == 1 and indices.numel() > 0 and indices.numel() == inputs.shape[0]


def _store(target: torch.Tensor, values: torch.Tensor, add: bool) -> None:
    """Write `values` into the view `target` (of vLLM's output tensor), or add them to it."""
    if add:
        target += values
    else:
        target.copy_(values)


def bgmv_shrink(inputs, lora_a_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    """vLLM's `bgmv_shrink`, grouped by adapter."""
    if not _can_group(inputs, lora_indices_tensor):
        return _ORIGINAL["bgmv_shrink"](inputs, lora_a_weights, output_tensor, lora_indices_tensor, scaling)
    outputs = lora_matmul(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    """vLLM's `bgmv_expand`, grouped by adapter."""
    if not _can_group(inputs, lora_indices_tensor) or inputs.shape[0] != output_tensor.shape[0]:
        return _ORIGINAL["bgmv_expand"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs)
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    common = min(outputs.shape[1], output_tensor.shape[1])  # adapter and model may pad differently
    _store(output_tensor[:, :common], outputs[:, :common], add_inputs)


def bgmv_expand_slice(
    inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size, add_inputs=True
):
    """vLLM's `bgmv_expand_slice`, grouped by adapter."""
    if not _can_group(inputs, lora_indices_tensor):
        return _ORIGINAL["bgmv_expand_slice"](
            inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size, add_inputs
        )
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    _store(output_tensor[:, slice_offset : slice_offset + slice_size], outputs, add_inputs)


def use_grouped_cpu_lora(enabled: bool = True) -> None:
    """Route vLLM's CPU LoRA ops through the grouped versions (or back to vLLM's own); affects engines in-process."""
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    for name in _PATCHED_NAMES:
        _ORIGINAL.setdefault(name, getattr(lora_ops, name))
        chosen = globals()[name] if enabled else _ORIGINAL[name]
        setattr(lora_ops, name, chosen)  # the sgmv_* (prefill) ops look these up here
        setattr(punica_cpu, name, chosen)  # the decode path bound them by name at import
