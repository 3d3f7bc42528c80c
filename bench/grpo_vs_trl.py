"""Bench: samples/s of a GRPO training step, logrl against TRL's `GRPOTrainer`, same model, prompts and shapes.

Measured in one run, on one machine, in this order:
  TRL:   `trl.GRPOTrainer` (HF generate, its own loss), LoRA on q/k/v/o, no KL (beta 0), P prompts x G completions
         per optimizer step (per_device_train_batch_size G, gradient_accumulation_steps P), a cheap format reward;
  logrl: `GRPOTrainer` (vLLM rollout actor, reward actors, DeepSpeed learner, adapter sync + check), same LoRA,
         kl_coef 0, no perplexity reward (so no reference pass), same P, G and max new tokens; both roles get
         every core (`rollout.threads`, `learner.threads`).
The model is a freshly initialised tiny Llama at the given shape (untrained: completions run to the token cap
in both systems, so both do the same work), prompts are bundled BGL windows rendered as logrl renders them
(the same chat messages to both). Each system runs `--steps` steps; the first is a warm-up, the rest are timed.
Prints samples/s of each and the ratio (above 1: logrl is faster).

Like with like: fp32 and the same gradient checkpointing in both (off by default, `--checkpointing` for on; TRL's own
default is on, which made it 16-32% slower in earlier runs of this bench).

TRL is not a logrl dependency; install it beside the venv for the bench only:
    .venv/bin/pip install --no-deps --target .cache/trl-site trl==1.16.0 datasets xxhash multiprocess
    PYTHONPATH=.cache/trl-site .venv/bin/python bench/grpo_vs_trl.py                           # hidden 128, 2 layers
    PYTHONPATH=.cache/trl-site .venv/bin/python bench/grpo_vs_trl.py --hidden 512 --layers 8 --heads 8
`--overlap` also runs logrl with `train.overlap_rollout: true` (step k+1 sampled while step k learns; use
`--steps 6` or more: its steady state is the steps between the first and the last, which samples nothing ahead)
and prints its gain over logrl without it; `--overlap-threads 1` gives each overlapped role one core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_grpo_model import bgl_rows, machine, pick_rows

REPO = Path(__file__).resolve().parents[1]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def tiny_model(out: Path, rows: list[dict], args) -> Path:
    """A freshly initialised tiny Llama + BPE tokenizer (logrl's builder) at the bench's shape."""
    from rl_actors.config import TinyModelConfig
    from rl_actors.tiny_model import build_tiny_model

    examples = out / "rows.jsonl"
    examples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    shape = TinyModelConfig(
        vocab_size=2048,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        intermediate_size=args.hidden * 2,
    )
    return build_tiny_model([examples], out / "model", shape, args.max_model_len)


def format_reward(completions, **_) -> list[float]:
    """TRL's reward: 1 when the completion closes an answer tag (cheap, like logrl's rewards are here)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float("</answer>" in text) for text in texts]


def run_trl(model_path: Path, messages: list[list[dict]], args, out: Path) -> list[float]:
    """Per-step seconds of TRL's GRPOTrainer (LoRA, beta 0), P prompts x G completions per optimizer step."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            times.append(time.perf_counter() - self.started)

    config = GRPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=args.group_size,
        gradient_accumulation_steps=args.prompts,
        num_generations=args.group_size,
        max_completion_length=args.max_new_tokens,
        beta=0.0,
        learning_rate=1e-3,
        max_steps=args.steps,
        temperature=1.0,
        use_cpu=True,
        bf16=False,  # fp32, as logrl's learner on CPU
        # TRL turns gradient checkpointing on by default; logrl's learner runs without it unless asked: both sides
        # get the same (--checkpointing turns it on for both).
        gradient_checkpointing=args.checkpointing,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        shuffle_dataset=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    prompts = [m for _ in range(args.steps) for m in messages]  # P prompts per step, every step
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=format_reward,
        args=config,
        train_dataset=Dataset.from_list([{"prompt": m} for m in prompts]),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"),
        callbacks=[StepTimer()],
    )
    trainer.train()
    return times


def run_logrl(
    model_path: Path, rows: list[dict], args, out: Path, overlap: bool = False, threads: int | None = None
) -> tuple[list[float], dict]:
    """Per-step seconds of logrl's GRPOTrainer with the same shapes, and the last step's metrics; `overlap` samples
    each next batch during the update (`train.overlap_rollout`); `threads` per role (default --threads)."""
    threads = threads or args.threads
    import ray

    from cluster.config import load_config
    from cluster.environment import init_ray
    from rl_actors.trainer import GRPOTrainer

    cfg = load_config(
        REPO / "configs" / "quickstart.yaml",
        [
            f"model.path={model_path}",
            "model.build_tiny=false",
            f"model.max_model_len={args.max_model_len}",
            "model.lora_rank=8",
            "model.lora_alpha=16",
            f"model.target_modules=[{','.join(LORA_TARGETS)}]",
            "sft.steps=0",
            f"train.steps={args.steps}",
            f"train.prompts_per_step={args.prompts}",
            f"rollout.group_size={args.group_size}",
            f"rollout.max_new_tokens={args.max_new_tokens}",
            f"rollout.threads={threads}",
            f"learner.threads={threads}",
            "learner.micro_batch_size=8",
            f"learner.gradient_checkpointing={args.checkpointing}",
            "learner.dtype=float32",
            "algo.kl_coef=0",
            # no perplexity reward: it needs a reference pass, and TRL runs without one (beta 0)
            "reward.weights={format: 0.5, answer: 1.0, grounding: 0.5, brevity: 0.1}",
            f"train.overlap_rollout={overlap}",
            f"train.output_dir={out / f'logrl-{overlap}'}",
            f"data.output_dir={out / f'logrl-{overlap}' / 'data'}",
        ],
    )
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    trainer = GRPOTrainer(cfg, rows, init_adapter=None)
    times, metrics = [], {}
    try:
        for step in range(args.steps):
            started = time.perf_counter()
            metrics = trainer.step(step)
            times.append(time.perf_counter() - started)
    finally:
        trainer.shutdown()
        ray.shutdown()
    return times, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=200, help="prompts of about this many tokens")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="steps per system; the first is a warm-up")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="also run logrl with train.overlap_rollout (next batch sampled during the update) and print its gain",
    )
    parser.add_argument("--no-trl", action="store_true", help="skip TRL (e.g. to measure only the overlap gain)")
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="gradient checkpointing on in both systems (default: off in both; TRL's own default is on)",
    )
    parser.add_argument(
        "--overlap-threads",
        type=int,
        default=None,
        help="threads per role in the overlap run (default --threads; the overlapped roles run at the same time)",
    )
    args = parser.parse_args()

    os.environ.setdefault("LOGRL_CACHE_DIR", str(REPO / ".cache"))
    from cluster.environment import apply_defaults

    apply_defaults()
    import torch
    from transformers import AutoTokenizer

    from contract.chat_tokens import chat_token_ids
    from pipelines.prompts.render import build_messages

    torch.set_num_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    try:
        all_rows = bgl_rows(max_prompt_tokens=400)
        model_path = tiny_model(out, all_rows, args)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        lengths = {i: len(chat_token_ids(tokenizer, build_messages(r["prompt"]))) for i, r in enumerate(all_rows)}
        # Prompts of about --prompt-tokens: the shortest rows at or above it, alternating labels.
        near = {i: n if n >= args.prompt_tokens else 1 << 30 for i, n in lengths.items()}  # shorter: never fit
        rows = pick_rows(all_rows, args.prompts, near, args.max_model_len - args.max_new_tokens)
        messages = [build_messages(r["prompt"]) for r in rows]
        prompt_lens = [lengths[all_rows.index(r)] for r in rows]
        samples = args.prompts * args.group_size
        print(f"machine : {machine()}; torch {torch.__version__}, {args.threads} threads")
        print(
            f"shapes  : tiny Llama hidden {args.hidden}, {args.layers} layers, {args.heads} heads, fresh weights; "
            f"LoRA r8 on {'/'.join(LORA_TARGETS)}; {args.prompts} prompts x G={args.group_size}, "
            f"{args.max_new_tokens} new tokens; prompts {min(prompt_lens)}-{max(prompt_lens)} tokens; no KL; fp32; "
            f"gradient checkpointing {'on' if args.checkpointing else 'off'} in both",
            flush=True,
        )
        trl_times = [] if args.no_trl else run_trl(model_path, messages, args, out)
        logrl_times, metrics = run_logrl(model_path, rows, args, out)
        overlap_times, overlap_metrics = [], {}
        if args.overlap:
            overlap_times, overlap_metrics = run_logrl(model_path, rows, args, out, True, args.overlap_threads)
    finally:
        shutil.rmtree(out, ignore_errors=True)

    def rate(times: list[float], overlapped: bool = False) -> float:
        # Steady state: without the warm-up step, and with overlap also without the last step, which samples
        # nothing ahead (its batch was sampled during the step before): the middle steps are what a long run pays.
        steady = (times[1:-1] if overlapped else times[1:]) or times
        return samples / statistics.mean(steady)

    trl_rate, logrl_rate = (rate(trl_times) if trl_times else float("nan")), rate(logrl_times)
    print(f"TRL GRPOTrainer (baseline): steps {[round(t, 2) for t in trl_times]} s -> {trl_rate:.2f} samples/s")
    print(f"logrl GRPOTrainer          : steps {[round(t, 2) for t in logrl_times]} s -> {logrl_rate:.2f} samples/s")
    phases = ("rollout", "reference", "reward", "learn", "sync")
    split = {k: round(metrics.get(f"time/{k}", 0.0), 2) for k in phases}
    print(
        f"logrl last step split (s)  : {split}; "
        f"completion tokens/sample {metrics.get('rollout/completion_tokens', 0):.1f}"
    )
    print(f"ratio logrl / TRL          : {logrl_rate / trl_rate:.2f}x (goal >= 1.5x)")
    if overlap_times:
        overlap_rate = rate(overlap_times, overlapped=True)
        hidden = {k: round(overlap_metrics.get(f"time/{k}", 0.0), 2) for k in ("rollout", "rollout_ahead_wait")}
        threads = args.overlap_threads or args.threads
        print(
            f"logrl overlap_rollout ({threads} thread(s) per role): steps {[round(t, 2) for t in overlap_times]} s "
            f"-> {overlap_rate:.2f} samples/s; last step waits (s) {hidden}, "
            f"policy lag {overlap_metrics.get('rollout/policy_lag')}"
        )
        print(f"ratio overlap / logrl      : {overlap_rate / logrl_rate:.2f}x (baseline: logrl without overlap)")
        print(f"ratio overlap / TRL        : {overlap_rate / trl_rate:.2f}x")


if __name__ == "__main__":
    main()
