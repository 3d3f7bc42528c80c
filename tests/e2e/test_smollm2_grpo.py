"""One real GRPO step on the converted SmolLM2-135M-Instruct: vLLM rollouts (1 prompt x G=2), reward actors,
DeepSpeed LoRA learner, adapter sync into vLLM checked against the learner's logprobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smollm2_cfg(tmp_path_factory):
    import ray

    from cluster.config import load_config
    from cluster.environment import apply_defaults, init_ray
    from cluster.stages import ensure_model

    os.environ.setdefault("LOGRL_CACHE_DIR", str(REPO / ".cache"))  # where `make base-model` puts it
    apply_defaults()
    out = tmp_path_factory.mktemp("smollm2")
    cfg = load_config(
        REPO / "configs" / "quickstart.yaml",
        [
            "model.path=smollm2-135m",  # a registry name: ensure_model builds or reuses the converted folder
            "model.build_tiny=false",
            "model.max_model_len=512",
            "learner.micro_batch_size=2",
            "sft.steps=0",
            "train.steps=1",
            "train.prompts_per_step=1",
            "rollout.group_size=2",
            "rollout.max_new_tokens=24",
            f"train.output_dir={out}",
            f"data.output_dir={out / 'data'}",
        ],
    )
    started = time.perf_counter()
    ensure_model(cfg)
    print(f"\n[smollm2] base model ready in {time.perf_counter() - started:.1f}s: {cfg.model.path}")
    init_ray(None, cfg.ray.num_cpus)
    yield cfg
    ray.shutdown()


def _shortest_anomalous_row(max_prompt_tokens: int) -> dict:
    """A prompt row of the bundled BGL sample, rendered like the data pipeline does (no Ray Data needed)."""
    from pipelines.prompts.rows import rows_in_process

    rows = rows_in_process(REPO / "data" / "bgl" / "BGL_2k.log", "bgl", 20, max_prompt_tokens)
    return min((row for row in rows if row["label"] == "anomalous"), key=lambda row: len(row["prompt"]))


def _perturbed_adapter(cfg, out: Path) -> Path:
    """A LoRA adapter on the architecture's Linear layers with B slightly off zero, so the policy is not the base.

    Zero-shot, both 24-token completions are usually malformed and tie on reward, so the group advantage is 0;
    starting off the base gives the KL term a gradient, and the update must still reach the adapter.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rl_actors.adapters import lora_target_modules

    base = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32)
    lora = LoraConfig(
        r=cfg.model.lora_rank,
        lora_alpha=cfg.model.lora_alpha,
        target_modules=lora_target_modules(base),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 1e-3)
    model.save_pretrained(out)
    return out


def test_one_grpo_step_on_smollm2_with_adapter_sync(smollm2_cfg):
    import ray
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from contract.chat_tokens import chat_token_ids
    from contract.completion_format import ANSWER_CLOSE
    from evaluation.inference import FAST_MODE, REASON_MODE, encode_eval_prompt, fast_token_budget
    from rl_actors.base_models import MARKER_FILE
    from rl_actors.trainer import GRPOTrainer, adapters_dir

    cfg = smollm2_cfg
    assert (Path(cfg.model.path) / MARKER_FILE).is_file()
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    row = _shortest_anomalous_row(cfg.data.max_prompt_tokens)
    prompt_tokens = len(encode_eval_prompt(tokenizer, row["prompt"], REASON_MODE))
    assert prompt_tokens + cfg.rollout.max_new_tokens <= cfg.model.max_model_len

    started = time.perf_counter()
    init_adapter = _perturbed_adapter(cfg, Path(cfg.train.output_dir) / "init-adapter")
    trainer = GRPOTrainer(cfg, [row], init_adapter=str(init_adapter))
    setup_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        metrics = trainer.step(0)
        step_s = time.perf_counter() - started
        print(f"[smollm2] actors up in {setup_s:.1f}s; one GRPO step in {step_s:.1f}s; prompt {prompt_tokens} tokens")
        numeric = {k: v for k, v in metrics.items() if isinstance(v, float | int)}
        print("[smollm2] " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(numeric.items())))

        # The learner (PEFT, fp32) and vLLM (fp32, LoRA) agree on the freshly synced adapter.
        assert metrics["sync/max_abs_logprob_diff"] < 1e-3
        assert metrics["adapter/version"] == 1 and metrics["rollout/completion_tokens"] > 0
        # The adapter changed: GRPO's v1 differs from the adapter it started from (published as v0).
        start, end = (load_file(str(adapters_dir(cfg.train) / v / "adapter_model.safetensors")) for v in ("v0", "v1"))
        assert start.keys() == end.keys() and len(start) == 2 * 7 * 30  # A and B of 7 modules in 30 layers
        assert max(float((start[k] - end[k]).abs().max()) for k in start) > 0

        # vLLM stops on the token SmolLM2's template closes a turn with, and leaves it out of the text.
        engine = trainer.rollout.workers[0]
        chat = chat_token_ids(tokenizer, [{"role": "user", "content": "Say hello in one word."}])
        text, ids, finish = ray.get(engine.complete.remote([chat], 32, None, False))[0]
        assert finish == "stop" and ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>"), (text, ids, finish)
        assert "<|im_end|>" not in text
        kept, _, _ = ray.get(engine.complete.remote([chat], 32, [ANSWER_CLOSE], False))[0]
        print(f"[smollm2] greedy chat: {text!r}; with a stop string kept: {kept!r}")

        # The zero-shot base model's greedy answers to our prompt, in both modes (printed for the report).
        for mode, budget, stop in ((REASON_MODE, 96, None), (FAST_MODE, fast_token_budget(tokenizer), [ANSWER_CLOSE])):
            ids = encode_eval_prompt(tokenizer, row["prompt"], mode)
            text, _, finish = ray.get(engine.complete.remote([ids], budget, stop, False))[0]
            print(f"[smollm2] zero-shot {mode} ({finish}, label {row['label']}): {text!r}")
    finally:
        trainer.shutdown()
