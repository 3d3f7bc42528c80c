"""Fixtures for the serving tests: BGL sample lines, a frozen miner, and (for the Ray test) a tiny model + adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.reading.log_formats import parse_line
from pipelines.templates.miner import LogTemplateMiner
from serving.detect import DetectLimits

REPO_ROOT = Path(__file__).resolve().parents[2]
BGL_SAMPLE = REPO_ROOT / "data" / "bgl" / "BGL_2k.log"


@pytest.fixture(scope="session")
def bgl_raw_lines() -> list[str]:
    return [line for line in BGL_SAMPLE.read_text(encoding="utf-8").split("\n") if line]


@pytest.fixture(scope="session")
def miner(bgl_raw_lines: list[str]) -> LogTemplateMiner:
    return LogTemplateMiner.fit(parse_line(text, "bgl")["content"] for text in bgl_raw_lines[:500])


@pytest.fixture(scope="session")
def miner_path(miner: LogTemplateMiner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return miner.save(tmp_path_factory.mktemp("miner") / "miner.json")


@pytest.fixture
def limits() -> DetectLimits:
    return DetectLimits(
        max_request_lines=50, max_line_chars=2000, max_prompt_tokens=640, max_new_tokens=64, fast_max_new_tokens=8
    )


@pytest.fixture(scope="session")
def tiny_tokenizer(bgl_raw_lines: list[str]):
    """The project's tiny-model tokenizer (format tags as plain added tokens), trained as the quickstart trains it:
    on log lines and the prompts, so the system prompt is words, not characters."""
    from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT
    from rl_actors.tiny_model import train_tokenizer

    return train_tokenizer([*bgl_raw_lines[:200], SYSTEM_PROMPT, FAST_SYSTEM_PROMPT], vocab_size=1024)


@pytest.fixture(scope="session")
def tiny_model_and_adapter(bgl_raw_lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny Llama (the quickstart's builder) and a random rank-8 PEFT LoRA on it, as local folders."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rl_actors.config import TinyModelConfig
    from rl_actors.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    examples = root / "examples.jsonl"
    with examples.open("w") as handle:
        for start in range(0, 400, 20):
            prompt = "\n".join(bgl_raw_lines[start : start + 20])
            handle.write(json.dumps({"prompt": prompt, "reference": 'L1 "instruction cache parity"'}) + "\n")
    cfg = TinyModelConfig(vocab_size=1024, hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256)
    model_dir = build_tiny_model([examples], root / "model", cfg, max_len=1024)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = root / "adapter-v3"
    get_peft_model(base, lora).save_pretrained(adapter_dir)
    torch.manual_seed(1)  # a second version beside it, as a training run's adapters folder would hold
    fresh = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    get_peft_model(fresh, lora).save_pretrained(root / "adapter-v4")
    return model_dir, adapter_dir
