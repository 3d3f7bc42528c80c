"""Bench: what grounded decoding costs, against free reasoning (the baseline) on the same engine, rows and adapter.

Both decode the run's test prompts greedily through one vLLM rollout engine; grounded mode also builds each prompt's
evidence grammar (`contract/evidence_grammar.py`, counted in its time) and decodes under it. Rounds alternate the
two arms. Prints, per arm, the median wall time of a round and tokens/s, and the grounded/free ratios.
Run after a quickstart (it reuses its model, adapter and test split):
    python bench/grounded_decoding.py [--run runs/quickstart] [--rounds 3] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="runs/quickstart")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    from trained_run import open_run, rollout_engine

    run = Path(args.run)
    cfg, latest, tokenizer = open_run(run)
    from contract.evidence_grammar import grounded_grammar
    from evaluation.inference import encode_eval_prompt
    from pipelines.building.dataset import load_examples

    rows = load_examples(run / "data" / "test")
    prompts = [encode_eval_prompt(tokenizer, row["prompt"], "reason", cfg.data.format) for row in rows]
    budget = min(args.max_new_tokens, cfg.model.max_model_len - max(len(ids) for ids in prompts))
    engine = rollout_engine(cfg, latest)
    engine.complete_scored(prompts[:1], 1)  # untimed warm-up: first batch and first adapter use

    def free() -> list:
        return engine.complete_scored(prompts, budget)

    def grounded() -> list:
        return engine.complete_scored(prompts, budget, grammars=[grounded_grammar(row["prompt"]) for row in rows])

    times: dict[str, list[float]] = {"free reasoning (baseline)": [], "grounded": []}
    tokens: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, arm in zip(times, (free, grounded)):
            started = time.perf_counter()
            outputs = arm()
            times[name].append(time.perf_counter() - started)
            tokens[name] = sum(len(ids) for _, ids, _, _ in outputs)
    print(f"{len(rows)} prompts, {args.rounds} rounds, budget {budget} tokens, adapter {latest['name']}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:28s} median {median:6.2f} s/round  {tokens[name] / median:7.1f} tokens/s  {tokens[name]} tokens")
    base, other = medians["free reasoning (baseline)"], medians["grounded"]
    rate = (tokens["grounded"] / other) / (tokens["free reasoning (baseline)"] / base)
    print(f"grounded / free: wall {other / base:.2f}x, tokens/s {rate:.2f}x")


if __name__ == "__main__":
    main()
