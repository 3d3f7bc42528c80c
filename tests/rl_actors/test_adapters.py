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


# --- pruning old versions ----------------------------------------------------------------------------------------


def _versions(root, versions):
    for v in versions:
        AdapterSnapshot(v, {"adapter_config.json": b"{}"}).write(root)


def test_versions_to_prune_keeps_the_newest_and_the_protected():
    from rl_actors.adapters import versions_to_prune

    assert versions_to_prune(range(10), 3) == [0, 1, 2, 3, 4, 5, 6]  # v0 is not special here: the caller protects it
    assert versions_to_prune(range(10), 3, protected={0, 4}) == [1, 2, 3, 5, 6]
    assert versions_to_prune([7, 2, 9], 5) == []
    assert versions_to_prune(range(10), None, protected={0}) == []  # None keeps every version
    assert versions_to_prune([3, 1, 2], 1, protected={1}) == [2]  # a protected older one survives
    with pytest.raises(ValueError, match="keep_last"):
        versions_to_prune([1], 0)


def test_prune_adapter_versions_deletes_only_version_folders(tmp_path):
    from contract.adapter_store import adapter_versions
    from rl_actors.adapters import prune_adapter_versions

    _versions(tmp_path, range(8))
    (tmp_path / "notes").mkdir()
    (tmp_path / "v3.json").write_text("{}")
    assert prune_adapter_versions(tmp_path, 2, protected={0}) == [1, 2, 3, 4, 5]
    assert sorted(adapter_versions(tmp_path)) == [0, 6, 7]
    assert (tmp_path / "notes").is_dir() and (tmp_path / "v3.json").is_file()
    assert prune_adapter_versions(tmp_path / "missing", 2) == []


def test_keep_adapters_is_a_validated_config_field():
    from pydantic import ValidationError

    from rl_actors.config import TrainConfig

    assert TrainConfig().keep_adapters == 5 and TrainConfig(keep_adapters=None).keep_adapters is None
    with pytest.raises(ValidationError, match="keep_adapters"):
        TrainConfig(keep_adapters=0)


def test_the_run_folder_keeps_the_last_n_plus_v0_and_the_start_adapter(tmp_path):
    import json

    from contract.adapter_store import adapter_versions
    from rl_actors.config import TrainConfig
    from rl_actors.trainer import adapters_dir, protected_versions, publish_adapter

    cfg = TrainConfig(output_dir=str(tmp_path), keep_adapters=2)
    _versions(adapters_dir(cfg), [0, 1, 2, 3])
    protected = protected_versions(cfg, str(adapters_dir(cfg) / "v2"))  # GRPO restarted from v2: its KL reference
    assert protected == {0, 2}
    assert protected_versions(cfg, str(tmp_path / "elsewhere")) == {0}
    for version in range(4, 9):
        path = publish_adapter(AdapterSnapshot(version, {"adapter_config.json": b"{}"}), cfg, "grpo", protected)
        assert path.is_dir()
    assert sorted(adapter_versions(adapters_dir(cfg))) == [0, 2, 7, 8]
    assert json.loads((tmp_path / "latest_adapter.json").read_text())["version"] == 8
    unlimited = TrainConfig(output_dir=str(tmp_path / "all"), keep_adapters=None)
    for version in range(4):
        publish_adapter(AdapterSnapshot(version, {"adapter_config.json": b"{}"}), unlimited, "grpo")
    assert sorted(adapter_versions(adapters_dir(unlimited))) == [0, 1, 2, 3]


def test_a_rollout_worker_keeps_the_last_n_and_the_loaded_version(tmp_path, monkeypatch):
    import sys
    from types import SimpleNamespace

    from contract.adapter_store import adapter_versions
    from rl_actors.rollout import RolloutEngine

    monkeypatch.setitem(
        sys.modules,
        "vllm.lora.request",
        SimpleNamespace(
            LoRARequest=lambda *args: SimpleNamespace(lora_name=args[0], lora_int_id=args[1], lora_path=args[2])
        ),
    )
    removed = []
    engine = RolloutEngine.__new__(RolloutEngine)  # no vLLM: only the adapter bookkeeping
    engine.llm = SimpleNamespace(llm_engine=SimpleNamespace(remove_lora=removed.append))
    engine.adapter_dir, engine.keep_adapters, engine.lora = str(tmp_path), 2, None
    for version in range(5):
        engine.load_adapter(AdapterSnapshot(version, {"adapter_config.json": b"{}"}))
    assert sorted(adapter_versions(tmp_path)) == [3, 4] and removed == [1, 2, 3, 4]
    engine.load_adapter(AdapterSnapshot(1, {"adapter_config.json": b"{}"}))  # back to an old version (a sync check)
    assert sorted(adapter_versions(tmp_path)) == [1, 3, 4] and engine.adapter_version == 1
    engine.load_adapter(AdapterSnapshot(5, {"adapter_config.json": b"{}"}))
    assert sorted(adapter_versions(tmp_path)) == [4, 5]
