"""The grouped CPU LoRA ops compute exactly what vLLM's own torch ops compute (vLLM is imported, no engine)."""

import pytest
import torch

from rl_actors import vllm_cpu_lora as grouped

lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")


@pytest.fixture(autouse=True)
def _originals():
    grouped.use_grouped_cpu_lora(False)  # record vLLM's ops; the module under test stays importable as-is
    yield
    grouped.use_grouped_cpu_lora(False)


INDEX_CASES = {
    "one adapter": [0] * 7,
    "mixed and no-LoRA (-1)": [0, 1, 1, -1, 0, 2, -1],
}


@pytest.mark.parametrize("indices", INDEX_CASES.values(), ids=INDEX_CASES.keys())
@pytest.mark.parametrize("four_d", [False, True])
def test_shrink_matches_vllm(indices, four_d):
    torch.manual_seed(0)
    idx = torch.tensor(indices)
    x = torch.randn(len(indices), 24)
    w = torch.randn(3, 1, 8, 24) if four_d else torch.randn(3, 8, 24)
    want, got = torch.zeros(len(indices), 8), torch.zeros(len(indices), 8)
    lora_ops.bgmv_shrink(x, w, want, idx, 0.5)
    grouped.bgmv_shrink(x, w, got, idx, 0.5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert want.abs().sum() > 0


@pytest.mark.parametrize("indices", INDEX_CASES.values(), ids=INDEX_CASES.keys())
@pytest.mark.parametrize("add_inputs", [False, True])
def test_expand_and_expand_slice_match_vllm(indices, add_inputs):
    torch.manual_seed(1)
    idx = torch.tensor(indices)
    x = torch.randn(len(indices), 8)
    w = torch.randn(3, 1, 20, 8)
    base = torch.randn(len(indices), 20)
    want, got = base.clone(), base.clone()
    lora_ops.bgmv_expand(x, w, want, idx, add_inputs)
    grouped.bgmv_expand(x, w, got, idx, add_inputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    base = torch.randn(len(indices), 50)
    want, got = base.clone(), base.clone()
    lora_ops.bgmv_expand_slice(x, w, want, idx, 10, 20, add_inputs)
    grouped.bgmv_expand_slice(x, w, got, idx, 10, 20, add_inputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, base)


def test_expand_pads_like_vllm_when_the_adapter_is_wider_than_the_output():
    torch.manual_seed(2)
    idx, x, w = torch.zeros(4, dtype=torch.long), torch.randn(4, 8), torch.randn(1, 32, 8)
    want, got = torch.zeros(4, 30), torch.zeros(4, 30)
    lora_ops.bgmv_expand(x, w, want, idx, False)
    grouped.bgmv_expand(x, w, got, idx, False)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_switching_routes_vllm_prefill_and_decode_ops():
    from vllm.lora.punica_wrapper import punica_cpu

    grouped.use_grouped_cpu_lora(True)
    assert lora_ops.bgmv_shrink is grouped.bgmv_shrink and punica_cpu.bgmv_expand is grouped.bgmv_expand
    # sgmv_* (prefill) call the bgmv_* found in lora_ops: the grouped ones once switched on
    torch.manual_seed(3)
    x, w = torch.randn(5, 16), torch.randn(2, 4, 16)
    got = torch.zeros(5, 4)
    lora_ops.sgmv_shrink(x, w, got, None, torch.tensor([2, 3]), torch.tensor([1, 0]), 2, 3, 5, 1.0)
    want = torch.cat([x[:2] @ w[1].T, x[2:] @ w[0].T])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grouped.use_grouped_cpu_lora(False)
    assert lora_ops.bgmv_shrink is not grouped.bgmv_shrink and punica_cpu.bgmv_expand is not grouped.bgmv_expand
