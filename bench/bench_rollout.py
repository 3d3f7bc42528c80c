"""Bench: sampling G completions per prompt for one GRPO batch, HF `generate` (baseline) vs the vLLM rollout engine.

Both sample the same prompts with the same model + LoRA adapter at temperature 1. Prints tokens/s and the ratio;
on CPU also the engine with vLLM's stock LoRA ops against the grouped ones it uses (`rl_actors/vllm_cpu_lora.py`).
Run after a quickstart (it reuses its model, adapter and prompts):
    python bench/bench_rollout.py [--run runs/quickstart] [--prompts 8] [--group 4] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="runs/quickstart")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    from trained_run import open_run, rollout_engine

    run = Path(args.run)
    cfg, latest, tokenizer = open_run(run)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from contract.chat_tokens import chat_token_ids
    from pipelines.building.dataset import load_examples
    from pipelines.prompts.render import build_messages

    rows = load_examples(run / "data" / "train")[: args.prompts]
    prompts = [chat_token_ids(tokenizer, build_messages(r["prompt"])) for r in rows]

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(cfg.model.path), latest["path"]).eval()
    started, hf_tokens = time.perf_counter(), 0
    with torch.no_grad():
        for ids in prompts:
            out = model.generate(
                input_ids=torch.tensor([ids] * args.group),
                do_sample=True,
                temperature=1.0,
                max_new_tokens=args.max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            hf_tokens += int((out[:, len(ids) :] != tokenizer.pad_token_id).sum())
    hf_s = time.perf_counter() - started

    rollout_cfg = cfg.rollout.model_copy(update={"group_size": args.group, "max_new_tokens": args.max_new_tokens})
    engine = rollout_engine(cfg, latest, rollout_cfg)
    engine.generate([(0, prompts[0])], seed=0)  # warm-up: the first LoRA batch compiles kernels

    def timed_rollout() -> tuple[int, float]:
        started = time.perf_counter()
        completions = engine.generate(list(enumerate(prompts)), seed=1)
        return sum(len(c.completion_ids) for c in completions), time.perf_counter() - started

    stock = None
    if rollout_cfg.num_gpus_per_worker == 0:
        from rl_actors.vllm_cpu_lora import use_grouped_cpu_lora

        use_grouped_cpu_lora(False)
        stock = timed_rollout()
        use_grouped_cpu_lora(True)
    vllm_tokens, vllm_s = timed_rollout()

    print(f"batch: {len(prompts)} prompts x G={args.group}, <= {args.max_new_tokens} new tokens, CPU fp32")
    print(f"baseline HF generate : {hf_tokens:6d} tokens in {hf_s:6.2f}s = {hf_tokens / hf_s:8.1f} tok/s")
    print(f"vLLM rollout engine  : {vllm_tokens:6d} tokens in {vllm_s:6.2f}s = {vllm_tokens / vllm_s:8.1f} tok/s")
    print(f"ratio (vLLM / HF tok/s): {(vllm_tokens / vllm_s) / (hf_tokens / hf_s):.2f}x")
    if stock is not None:
        print(f"vLLM, stock LoRA ops : {stock[0]:6d} tokens in {stock[1]:6.2f}s = {stock[0] / stock[1]:8.1f} tok/s")
        print(f"ratio (grouped / stock LoRA ops tok/s): {(vllm_tokens / vllm_s) / (stock[0] / stock[1]):.2f}x")


if __name__ == "__main__":
    main()
