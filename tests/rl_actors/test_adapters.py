"""Adapter snapshots: PEFT folders round-trip as bytes, and every version gets its own vLLM id."""

from __future__ import annotations

import pytest

from rl_actors.adapters import AdapterSnapshot


def test_snapshot_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "adapter_config.json").write_text("{}")
    (src / "adapter_model.safetensors").write_bytes(b"\x00weights")
    snap = AdapterSnapshot.from_dir(src, version=3)
    out = snap.write(tmp_path / "out")
    assert out.name == "v3"
    assert (out / "adapter_model.safetensors").read_bytes() == b"\x00weights"
    assert AdapterSnapshot.from_dir(out, 3) == snap


def test_each_version_has_a_distinct_positive_lora_id():
    ids = {AdapterSnapshot(v, {}).lora_int_id for v in range(5)}
    assert len(ids) == 5 and min(ids) >= 1


def test_non_adapter_folder_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        AdapterSnapshot.from_dir(tmp_path, 0)


def test_lora_targets_are_the_linear_layers_without_the_output_head():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rl_actors.adapters import lora_target_modules

    for tied in (False, True):
        config = LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=tied,
        )
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        expected = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
        assert lora_target_modules(model) == expected
