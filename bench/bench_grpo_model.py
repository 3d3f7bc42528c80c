"""Bench: one logrl GRPO step vs doing it by hand (HF `generate` + a plain PEFT training step), same model and shapes.

Measured in one run, in this order, on the same prompts (P prompts x G samples, <= N new tokens, CPU fp32):
  A. HF generate: transformers + a fresh PEFT LoRA adapter (rank and targets as logrl's), sampling at T=1;
  B. plain PEFT step: torch AdamW on the same LoRA, forward+backward over A's prompt+completion sequences,
     cross-entropy on completion tokens only, micro-batches as logrl's learner;
  logrl: `GRPOTrainer` (vLLM rollout, reward actors, DeepSpeed learner, adapter sync) from a fresh adapter,
     one warm-up step, then one timed step; its phase split comes from the step's metrics.
Prints ratios against A and B (above 1: logrl is faster). Prompts come from the bundled BGL sample (rendered like the
data pipeline does) or from a prepared train split (`--rows`: its folder, or a JSONL file): the shortest that fit,
alternating labels.
    python bench/bench_grpo_model.py --model smollm2-135m --prompts 4 --group-size 4 --max-new-tokens 48
    python bench/bench_grpo_model.py --model runs/hdfs/tiny-model --prompts 1 --group-size 2 --max-new-tokens 8
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

REPO = Path(__file__).resolve().parents[1]
Pair = tuple[list[int], list[int]]


@dataclass
class Measured:
    seconds: float
    samples: int
    tokens: int  # generated (A, rollout) or trained completion tokens (B, learn)

    def rate(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else float("nan")


def bgl_rows(max_prompt_tokens: int) -> list[dict]:
    """Prompt rows of the bundled BGL sample, rendered as the data pipeline does (no Ray Data needed)."""
    from pipelines.prompts.rows import rows_in_process

    return rows_in_process(REPO / "data" / "bgl" / "BGL_2k.log", "bgl", 20, max_prompt_tokens)


def pick_rows(rows: list[dict], count: int, prompt_len: dict[int, int], budget: int) -> list[dict]:
    """The `count` shortest rows whose prompt + completion budget fits, alternating anomalous and normal."""
    pools = {
        label: sorted(
            (i for i, r in enumerate(rows) if r["label"] == label and prompt_len[i] <= budget),
            key=lambda i: prompt_len[i],
        )
        for label in ("anomalous", "normal")
    }
    picked: list[int] = []
    while len(picked) < count and any(pools.values()):
        for label in ("anomalous", "normal"):
            if pools[label] and len(picked) < count:
                picked.append(pools[label].pop(0))
    if len(picked) < count:
        raise SystemExit(f"only {len(picked)} prompts fit max_model_len - max_new_tokens = {budget} tokens")
    return [rows[i] for i in picked]


def lora_model(model_path: str, rank: int, alpha: int) -> PeftModel:
    """The base model in fp32 with a fresh LoRA adapter on its Linear layers (logrl's default targets)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rl_actors.adapters import lora_target_modules

    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    lora = LoraConfig(r=rank, lora_alpha=alpha, target_modules=lora_target_modules(base), task_type="CAUSAL_LM")
    return get_peft_model(base, lora)


def hf_generate(
    model: PeftModel, prompts: list[list[int]], group: int, max_new: int, end_id: int, pad_id: int
) -> list[Pair]:
    """G sampled completions per prompt, each cut after its first end-of-turn token (vLLM stops there too)."""
    import torch

    pairs: list[Pair] = []
    with torch.no_grad():
        for ids in prompts:
            out = model.generate(
                input_ids=torch.tensor([ids] * group),
                attention_mask=torch.ones((group, len(ids)), dtype=torch.long),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new,
                eos_token_id=end_id,
                pad_token_id=pad_id,
            )
            for row in out[:, len(ids) :].tolist():
                pairs.append((ids, row[: row.index(end_id) + 1] if end_id in row else row))
    return pairs


def peft_step(
    model: PeftModel, optimizer: torch.optim.Optimizer, pairs: list[Pair], micro_batch: int, pad_id: int
) -> None:
    """One optimizer step: completion-token cross-entropy, gradients accumulated over micro-batches."""
    import torch

    model.train()
    chunks = [pairs[i : i + micro_batch] for i in range(0, len(pairs), micro_batch)]
    for chunk in chunks:
        width = max(len(p) + len(c) for p, c in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (prompt, completion) in enumerate(chunk):
            seq = torch.tensor(prompt + completion)
            input_ids[row, : len(seq)], attention[row, : len(seq)] = seq, 1
            labels[row, len(prompt) : len(seq)] = seq[len(prompt) :]
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        (loss / len(chunks)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{len(os.sched_getaffinity(0))} usable cores ({os.cpu_count()} online), {cpu}; load avg {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="registered base model name or a model folder")
    parser.add_argument("--rows", type=Path, help="prepared train split folder or JSONL (default: bundled BGL)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-model-len", type=int, default=768)
    parser.add_argument("--threads", type=int, default=2, help="torch threads: baselines, rollout and learner")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    args = parser.parse_args()

    os.environ.setdefault("LOGRL_CACHE_DIR", str(REPO / ".cache"))
    from cluster.environment import apply_defaults

    apply_defaults()
    import ray
    import torch
    from transformers import AutoTokenizer

    from cluster.config import load_config
    from cluster.environment import init_ray
    from contract.chat_tokens import chat_token_ids
    from pipelines.building.dataset import load_examples
    from pipelines.prompts.render import build_messages
    from rl_actors.base_models import resolve_model_path
    from rl_actors.sequences import assistant_end_id
    from rl_actors.trainer import GRPOTrainer

    torch.set_num_threads(args.threads)
    model_path = resolve_model_path(args.model)
    out = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    p, g, n = args.prompts, args.group_size, args.max_new_tokens
    cfg = load_config(
        args.config,
        [
            f"model.path={model_path}",
            "model.build_tiny=false",
            f"model.max_model_len={args.max_model_len}",
            "sft.steps=0",
            "train.steps=2",
            f"train.prompts_per_step={p}",
            f"rollout.group_size={g}",
            f"rollout.max_new_tokens={n}",
            f"rollout.threads={args.threads}",
            f"learner.threads={args.threads}",
            f"train.output_dir={out}",
            f"data.output_dir={out / 'data'}",
            *args.overrides,
        ],
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    end_id = assistant_end_id(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    all_rows = load_examples(args.rows) if args.rows else bgl_rows(cfg.data.max_prompt_tokens)
    fmt = cfg.data.format  # the task prompt logrl's trainer uses for this config (template sets: a short one)
    lengths = {
        i: len(chat_token_ids(tokenizer, build_messages(r["prompt"], data_format=fmt))) for i, r in enumerate(all_rows)
    }
    rows = pick_rows(all_rows, p, lengths, cfg.model.max_model_len - n)
    prompts = [chat_token_ids(tokenizer, build_messages(r["prompt"], data_format=fmt)) for r in rows]

    print(f"model   : {model_path}")
    print(f"machine : {machine()}; torch {torch.__version__}, {args.threads} threads per role")
    print(
        f"shapes  : {p} prompts x G={g}, <= {n} new tokens, prompts {[len(x) for x in prompts]} tokens "
        f"({'/'.join(r['label'][0] for r in rows)}) from {args.rows or 'bundled BGL_2k.log'}; "
        f"LoRA r{cfg.model.lora_rank} alpha {cfg.model.lora_alpha}, micro-batch {cfg.learner.micro_batch_size}, "
        f"lr {cfg.learner.learning_rate}, fp32, sampling T=1"
    )
    print(
        f"logrl   : {args.config.name} + sft.steps=0, fresh adapter, kl_coef {cfg.algo.kl_coef}, rewards "
        f"{sorted(cfg.reward.weights)}, 1 rollout / 1 learner / {cfg.reward.num_workers} reward actors",
        flush=True,
    )

    # A: HF generate (a one-prompt warm-up first, as logrl gets a warm-up step).
    model = lora_model(model_path, cfg.model.lora_rank, cfg.model.lora_alpha).eval()
    hf_generate(model, prompts[:1], 2, 4, end_id, pad_id)
    started = time.perf_counter()
    pairs = hf_generate(model, prompts, g, n, end_id, pad_id)
    a = Measured(time.perf_counter() - started, len(pairs), sum(len(c) for _, c in pairs))

    # B: a plain PEFT step on A's sequences (one warm-up step on the same batch first).
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learner.learning_rate, weight_decay=0.0)
    peft_step(model, optimizer, pairs, cfg.learner.micro_batch_size, pad_id)
    started = time.perf_counter()
    peft_step(model, optimizer, pairs, cfg.learner.micro_batch_size, pad_id)
    b = Measured(time.perf_counter() - started, len(pairs), a.tokens)
    del model, optimizer, params
    gc.collect()

    # logrl: one warm-up GRPO step, then one timed step.
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    trainer = GRPOTrainer(cfg, rows, init_adapter=None)
    setup_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        trainer.step(0)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        metrics = trainer.step(1)
        step_s = time.perf_counter() - started
    finally:
        trainer.shutdown()
        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)  # adapters and logs of a throwaway run
    samples = p * g
    gen_tokens = round(metrics["rollout/completion_tokens"] * samples)
    rollout = Measured(metrics["time/rollout"], samples, gen_tokens)
    learn = Measured(metrics["time/learn"], samples, gen_tokens)
    phases = ("rollout", "reference", "reward", "learn", "sync")
    split = {k: metrics.get(f"time/{k}", 0.0) for k in phases}
    split["other"] = step_s - sum(split.values())  # the sync check (learner vs vLLM logprobs) and driver work

    def row(name: str, m: Measured, what: str) -> str:
        return (
            f"{name:<34}{m.seconds:8.2f}s {m.samples:4d} seq {m.tokens:6d} tok "
            f"{m.rate(m.tokens):9.1f} tok/s {m.rate(m.samples):7.2f} seq/s  ({what})"
        )

    by_hand = Measured(a.seconds + b.seconds, samples, a.tokens)
    print(f"\nlogrl actors up in {setup_s:.1f}s, warm-up step {warmup_s:.1f}s, timed step {step_s:.2f}s")
    print("phase split of the timed step: " + ", ".join(f"{k} {v:.2f}s ({v / step_s:.0%})" for k, v in split.items()))
    print(f"\n{'':<34}{'time':>9} {'':>8} {'tokens':>10} {'':>15} {'':>13}")
    print(row("A  HF generate", a, "generated"))
    print(row("B  plain PEFT step", b, "trained completion tokens"))
    print(row("A+B by hand (generate + step)", by_hand, "per GRPO-sized batch"))
    print(row("logrl rollout (vLLM)", rollout, "time/rollout"))
    print(row("logrl learn (DeepSpeed)", learn, "time/learn, in the learner actor"))
    print(row("logrl GRPO step (all phases)", Measured(step_s, samples, gen_tokens), "wall clock"))
    print("\nratios (logrl / baseline, above 1 = logrl faster):")
    print(f"  rollout tok/s / HF generate tok/s    : {rollout.rate(gen_tokens) / a.rate(a.tokens):6.2f}x")
    print(f"  learn tok/s / plain PEFT step tok/s  : {learn.rate(gen_tokens) / b.rate(b.tokens):6.2f}x")
    print(f"  GRPO samples/s / (A+B) samples/s     : {(samples / step_s) / by_hand.rate(samples):6.2f}x")
    print(
        "notes: logrl's step also does what A+B leave out: reference logprobs (KL + perplexity reward), rewards, "
        "old-policy logprobs in the learner, adapter publish + sync into vLLM and a sync check; completions differ "
        "between runs (sampling), so tokens are counted per run."
    )


if __name__ == "__main__":
    main()
