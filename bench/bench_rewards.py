"""Bench: reward scoring throughput, in-process RewardScorer (baseline) vs the Ray reward pool (1 and 2 workers).

Run: python bench/bench_rewards.py [--samples 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from contract.completion_format import render_completion  # noqa: E402
from reward_workers.config import RewardConfig  # noqa: E402
from reward_workers.registry import RewardInput  # noqa: E402
from reward_workers.scorer import RewardScorer  # noqa: E402

MESSAGES = [
    ("RAS KERNEL INFO instruction cache parity error corrected", False),
    ("RAS KERNEL INFO generating core.{n}", False),
    ("RAS KERNEL FATAL data TLB error interrupt", True),
    ("RAS KERNEL INFO CE sym {n}, at 0x0b85eee0, mask 0x05", False),
    ("RAS APP FATAL ciod: failed to read message prefix on control stream", True),
    ("RAS KERNEL INFO total of {n} ddr error(s) detected and corrected", False),
    ("RAS MMCS ERROR idoproxydb hit ASSERT condition: ASSERT expression=0", True),
]


def make_samples(n: int, seed: int = 0) -> list[RewardInput]:
    """n synthetic samples: 12-line BGL-like prompts, a teacher rationale, and a mix of completions."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        lines = [(k, *rng.choice(MESSAGES)) for k in range(1, 13)]
        texts = {k: msg.format(n=rng.randint(1, 9999)) for k, msg, _ in lines}
        prompt = "Classify this log session.\n" + "\n".join(f"L{k} {texts[k]}" for k in texts) + "\n"
        bad = [k for k, _, is_bad in lines if is_bad]
        label = "anomalous" if bad else "normal"
        cited = bad[:2] or [1]
        reference = " ".join(f'L{k} "{texts[k].split(" ", 2)[2]}"' for k in cited) + f" so it is {label}."
        kind = i % 4
        if kind == 0:  # the teacher's own words
            text = render_completion(reference, label)
        elif kind == 1:  # hallucinated evidence, wrong verdict
            text = render_completion('L40 "disk on fire" and L3 "kernel panic"', "normal")
        elif kind == 2:  # prompt pasted into think
            text = render_completion(prompt, rng.choice(["normal", "anomalous"]))
        else:  # malformed
            text = "<think>" + reference + "</think><answer>" + label
        samples.append(RewardInput(prompt=prompt, completion=text, label=label, reference=reference))
    return samples


def best_rate(fn, n: int, repeats: int) -> float:
    """Median samples/s over `repeats` timed calls of fn()."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-cpus", type=int, default=4)
    args = parser.parse_args()

    cfg = RewardConfig(num_cpus_per_worker=1)
    samples = make_samples(args.samples)
    results: dict[str, float] = {}

    scorer = RewardScorer(cfg)
    scorer.score(samples[:8])  # warm the BLEU/ROUGE scorers
    results["baseline (in-process)"] = best_rate(lambda: scorer.score(samples), len(samples), args.repeats)
    print("baseline per-component seconds:", {k: round(v, 4) for k, v in scorer.timings().items()})

    import ray

    from cluster.environment import init_ray
    from reward_workers.worker import RewardWorker, score_with_pool, score_with_pool_timed

    init_ray(None, args.num_cpus)
    try:
        for n_workers in (1, 2):
            workers = [RewardWorker.options(num_cpus=cfg.num_cpus_per_worker).remote(cfg) for _ in range(n_workers)]
            score_with_pool(workers, samples[:8], timeout_s=cfg.timeout_s)  # actors up and warm
            name = f"ray pool, {n_workers} worker{'s' if n_workers > 1 else ''}"
            results[name] = best_rate(
                lambda w=workers: score_with_pool(w, samples, cfg.timeout_s), len(samples), args.repeats
            )
            _, timings = score_with_pool_timed(workers, samples, cfg.timeout_s)
            print(f"{name} timings:", {k: round(v, 4) for k, v in timings.items()})
            for w in workers:
                ray.kill(w)
    finally:
        ray.shutdown()

    base = results["baseline (in-process)"]
    print(f"\n{args.samples} samples, median of {args.repeats} runs")
    print(f"{'scorer':<26}{'samples/s':>12}{'vs baseline':>14}")
    for name, rate in results.items():
        print(f"{name:<26}{rate:>12.1f}{rate / base:>13.2f}x")


if __name__ == "__main__":
    main()
