"""Bench: the driver's cost per GRPO step as the batch grows: CPU seconds and bytes through the driver process.

Real actors (vLLM rollout engines, reward actors, a DeepSpeed learner) on a tiny model; short fixed completions
(`--max-new-tokens`, default 4: what is measured is the data plumbing, not the model), G=8, no KL and no
perplexity reward (no reference pass), cheap rewards (format, answer). For each batch size it builds a trainer,
runs a warm-up step, then `--steps` measured steps, and prints per step:
  driver CPU s: CPU time of the driver process (all its threads: pickling, building samples, Ray's own threads),
  main thread s: CPU time of the driver's own thread only (the trainer's Python work; Ray's threads left out),
  wall s, and MB the driver serialized for Ray (call arguments, puts) and deserialized (results it fetched).
The baseline named in the output is the smallest size: the ratios show how driver time grows with the batch
(flat is the target; <= 1 s per step at 32K samples).
    python bench/driver_overhead.py --samples 1024,8192,32768 --out docs/results/driver-overhead/after.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def measure(cfg, rows, steps: int) -> dict:
    """Warm-up step, then `steps` steps: driver CPU seconds, wall seconds, MB sent / received per step."""
    from rl_actors.ray_internals import serialized_bytes
    from rl_actors.trainer import GRPOTrainer

    trainer = GRPOTrainer(cfg, rows, init_adapter=None)
    try:
        trainer.step(0)
        cpu, main_thread, wall, sent, received = [], [], [], [], []
        for step in range(1, steps + 1):
            with serialized_bytes() as counts:
                c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
                metrics = trainer.step(step)
                cpu.append(time.process_time() - c0)
                main_thread.append(time.thread_time() - t0)
                wall.append(time.perf_counter() - w0)
            sent.append(counts["sent"] / 1e6)
            received.append(counts["received"] / 1e6)
    finally:
        trainer.shutdown()
    samples = metrics.get("learner/samples")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    phases = {k: round(v, 2) for k, v in metrics.items() if k.startswith("time/")}
    return dict(samples=samples, driver_cpu_s=mean(cpu), main_thread_s=mean(main_thread), wall_s=mean(wall),
                sent_mb=mean(sent), received_mb=mean(received), phases=phases)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="1024,8192,32768", help="samples per step (prompts x G), comma-separated")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1, help="measured steps per size, after one warm-up step")
    parser.add_argument("--rollout-workers", type=int, default=2)
    parser.add_argument("--reward-workers", type=int, default=2)
    parser.add_argument("--label", default="", help="what this run measures (e.g. the commit), kept in --out")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    os.environ.setdefault("LOGRL_CACHE_DIR", str(REPO / ".cache"))
    from bench_grpo_model import machine

    from cluster.config import load_config
    from cluster.environment import apply_defaults, init_ray
    from cluster.stages import ensure_data, ensure_model
    from pipelines.building.dataset import load_examples

    out = Path(tempfile.mkdtemp(prefix="bench-driver-"))
    base = [
        f"data.paths=[{REPO / 'data/bgl/BGL_2k.log'}]",
        f"data.output_dir={out / 'data'}",
        f"model.path={out / 'tiny-model'}",
        f"train.output_dir={out / 'run'}",
        "tiny_model.pretrain_steps=0",
        "tiny_model.num_layers=1",
        "sft.steps=0",
        "algo.kl_coef=0",
        "reward.weights={format: 0.5, answer: 1.0}",
        f"rollout.group_size={args.group_size}",
        f"rollout.max_new_tokens={args.max_new_tokens}",
        f"rollout.num_workers={args.rollout_workers}",
        f"reward.num_workers={args.reward_workers}",
        "rollout.threads=1",
        "learner.threads=2",
        "learner.micro_batch_size=256",
        "learner.logprob_micro_batch_size=256",
        "train.keep_adapters=2",
    ]
    results = []
    try:
        cfg = load_config(REPO / "configs" / "quickstart.yaml", base)
        apply_defaults(cfg)
        rows = load_examples(ensure_data(cfg)["paths"]["train"])
        ensure_model(cfg)
        init_ray(None, 16)
        print(f"machine: {machine()}; {len(rows)} train prompts, G={args.group_size}, "
              f"{args.max_new_tokens} new tokens", flush=True)  # fmt: skip
        for samples in [int(s) for s in args.samples.split(",")]:
            prompts = samples // args.group_size
            cfg = load_config(REPO / "configs" / "quickstart.yaml", [*base, f"train.prompts_per_step={prompts}"])
            figures = measure(cfg, rows, args.steps)
            results.append(figures)
            print(
                f"{samples:>6} samples: driver {figures['driver_cpu_s']:.2f} CPU s/step "
                f"(main thread {figures['main_thread_s']:.2f}), "
                f"wall {figures['wall_s']:.1f} s, "
                f"sent {figures['sent_mb']:.2f} MB, received {figures['received_mb']:.2f} MB; {figures['phases']}",
                flush=True,
            )
    finally:
        import ray

        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    first = results[0]
    for figures in results[1:]:
        growth = figures["samples"] / first["samples"]
        print(
            f"{figures['samples']:.0f} vs {first['samples']:.0f} samples (baseline: the smallest, {growth:.0f}x the "
            f"samples): driver CPU {figures['driver_cpu_s'] / first['driver_cpu_s']:.2f}x, main thread "
            f"{figures['main_thread_s'] / first['main_thread_s']:.2f}x, bytes "
            f"{(figures['sent_mb'] + figures['received_mb']) / (first['sent_mb'] + first['received_mb']):.2f}x"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        record = {"label": args.label, "machine": machine(), "args": vars(args), "results": results}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
