"""Batch greedy inference of model arms (base model or LoRA adapters) in a vLLM rollout actor, both modes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contract.chat_tokens import FAST_PREFILL, chat_token_ids, prefill_for
from contract.completion_format import (
    ANSWER_CLOSE,
    FAST_MODE,
    GROUNDED_MODE,
    MODES,
    REASON_MODE,
    answer_token_budget,
    budget_forced_prefill,
)
from evaluation.predictions import FORCED, ArmResult, Prediction, predict
from pipelines.prompts.render import build_messages
from rl_actors.config import ModelConfig, RolloutConfig

PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class ArmSpec:
    """A model arm to evaluate: a named adapter folder and version, or the base model (path None)."""

    name: str
    adapter_path: str | None
    adapter_version: int | None = None


def encode_eval_prompt(
    tokenizer, prompt_text: str, mode: str, data_format: str | None = None, prefill: str | None = None
) -> list[int]:
    """Prompt ids for one row: the reasoning chat (reasoning and grounded mode), or the fast chat with `<answer>`
    prefilled (one tokenization). `prefill` overrides the mode's (budget forcing: the cut rationale, closed)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fast = mode == FAST_MODE
    messages = build_messages(prompt_text, fast=fast, data_format=data_format)
    return chat_token_ids(tokenizer, messages, prefill_for(fast) if prefill is None else prefill)


def fast_token_budget(tokenizer, configured: int | None = None) -> int:
    """Fast mode's completion budget: the configured one, else measured on this tokenizer (verdict + `</answer>`)."""
    return configured or answer_token_budget(lambda text: tokenizer.encode(text, add_special_tokens=False))


def full_completion(mode: str, generated: str) -> str:
    """The completion to parse: fast mode puts the prefill back in front (the stop string is kept by the engine)."""
    return FAST_PREFILL + generated if mode == FAST_MODE else generated


def run_mode(
    engine,
    tokenizer,
    rows: Sequence[dict],
    mode: str,
    max_tokens: int,
    max_model_len: int,
    batch_size: int,
    use_adapter: bool,
    data_format: str | None = None,
    force_tokens: int = 0,
) -> tuple[list[Prediction], float]:
    """Greedy completions for every row in one mode; returns predictions (in row order) and generation wall time.

    A prompt that leaves no room to generate within `max_model_len` is not sent; it counts as unparsable. Grounded
    mode decodes each row under its prompt's grammar (`contract.evidence_grammar`). `force_tokens` > 0 turns on
    budget forcing in reasoning and grounded mode: a completion its budget cut before the answer is closed where
    it stopped and asked for the verdict, in that many tokens (`force_verdicts`; finish reason `forced`).
    """
    import ray

    from contract.evidence_grammar import grounded_grammar

    prompts = [encode_eval_prompt(tokenizer, row["prompt"], mode, data_format) for row in rows]
    sendable = [i for i, ids in enumerate(prompts) if len(ids) < max_model_len]
    stop = [ANSWER_CLOSE] if mode == FAST_MODE else None
    outputs: dict[int, tuple[str, list[int], str | None, float | None]] = {}
    prefix = FAST_PREFILL if mode == FAST_MODE else ""
    started = time.perf_counter()
    for start in range(0, len(sendable), batch_size):
        chunk = sendable[start : start + batch_size]
        budget = [min(max_tokens, max_model_len - len(prompts[i])) for i in chunk]
        # One call per distinct budget keeps the engine batching while never overrunning max_model_len.
        for limit in sorted(set(budget)):
            group = [i for i, b in zip(chunk, budget) if b == limit]
            chunk_prompts = [prompts[i] for i in group]
            grammars = [grounded_grammar(rows[i]["prompt"]) for i in group] if mode == GROUNDED_MODE else None
            results = ray.get(engine.complete_scored.remote(chunk_prompts, limit, stop, use_adapter, prefix, grammars))
            outputs.update(zip(group, results))
        print(f"[eval] {mode}: {min(start + batch_size, len(sendable))}/{len(sendable)} prompts", flush=True)
    if force_tokens and mode != FAST_MODE:
        outputs.update(
            force_verdicts(engine, tokenizer, rows, outputs, force_tokens, max_model_len, use_adapter, data_format)
        )
    elapsed = time.perf_counter() - started
    predictions = []
    for i, row in enumerate(rows):
        text, ids, finish, score = outputs.get(i, ("", [], PROMPT_TOO_LONG, None))
        completion = "" if finish == PROMPT_TOO_LONG else full_completion(mode, text)
        predictions.append(predict(row, mode, completion, finish, len(ids), score))
    return predictions, elapsed


def force_verdicts(
    engine,
    tokenizer,
    rows: Sequence[dict],
    outputs: Mapping[int, tuple[str, list[int], str | None, float | None]],
    force_tokens: int,
    max_model_len: int,
    use_adapter: bool,
    data_format: str | None = None,
) -> dict[int, tuple[str, list[int], str | None, float | None]]:
    """Budget forcing: every reasoning completion cut by its budget (`length`) before the answer, closed where it
    stopped (`budget_forced_prefill`) and continued as fast mode continues `<answer>`, in one engine call. Returns
    the forced rows: the whole completion, both passes' tokens, finish reason `forced`, the verdict's score."""
    import ray

    forced: dict[int, str] = {}
    prompts: dict[int, list[int]] = {}
    for i, (text, _, finish, _) in outputs.items():
        prefill = budget_forced_prefill(text) if finish == "length" else None
        if prefill is None:
            continue
        ids = encode_eval_prompt(tokenizer, rows[i]["prompt"], REASON_MODE, data_format, prefill)
        if len(ids) + force_tokens <= max_model_len:
            forced[i], prompts[i] = prefill, ids
    if not forced:
        return {}
    order = list(forced)
    results = ray.get(
        engine.complete_scored.remote(
            [prompts[i] for i in order], force_tokens, [ANSWER_CLOSE], use_adapter, FAST_PREFILL
        )
    )
    return {
        i: (forced[i] + text, outputs[i][1] + ids, FORCED, score) for i, (text, ids, _, score) in zip(order, results)
    }


def evaluate_arms(
    model_path: str,
    model_cfg: ModelConfig,
    rollout_cfg: RolloutConfig,
    arms: Sequence[ArmSpec],
    rows: Sequence[dict],
    modes: Sequence[str],
    fast_max_new_tokens: int | None,
    batch_size: int,
    data_format: str | None = None,
    extra: Mapping[str, tuple[Sequence[dict], str]] | None = None,
    force_verdict: bool = False,
) -> tuple[list[ArmResult], dict[str, list[ArmResult]]]:
    """Run every arm in every mode through one rollout engine (Ray must be initialised); adapters load in turn.

    `data_format` is the run's: prompts are built exactly as training built them. `extra` names more row sets,
    each run in one mode for every arm (validation rows for thresholds, a perturbed copy for the flip rate);
    returns the results on `rows` and per extra set. `force_verdict`: budget forcing (`run_mode`).
    """
    import ray
    from transformers import AutoTokenizer

    from rl_actors.actor_group import ActorGroup
    from rl_actors.adapters import AdapterSnapshot
    from rl_actors.rollout import RolloutWorker

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    group = ActorGroup(
        RolloutWorker,
        1,
        num_cpus=rollout_cfg.num_cpus_per_worker,
        num_gpus=rollout_cfg.num_gpus_per_worker,
        name="eval",
        kwargs_for_rank=lambda rank: dict(model_path=model_path, model_cfg=model_cfg, rollout_cfg=rollout_cfg),
    )
    engine = group.workers[0]
    reason_budget = rollout_cfg.max_new_tokens
    budgets = {REASON_MODE: reason_budget, GROUNDED_MODE: reason_budget}
    budgets[FAST_MODE] = fast_token_budget(tokenizer, fast_max_new_tokens)
    results: list[ArmResult] = []
    extra_results: dict[str, list[ArmResult]] = {name: [] for name in extra or {}}

    def arm_result(arm: ArmSpec, arm_rows: list[dict], mode: str, label: str) -> ArmResult:
        predictions, elapsed = run_mode(
            engine,
            tokenizer,
            arm_rows,
            mode,
            budgets[mode],
            model_cfg.max_model_len,
            batch_size,
            use_adapter=arm.adapter_path is not None,
            data_format=data_format,
            force_tokens=budgets[FAST_MODE] if force_verdict else 0,
        )
        print(f"[eval] {arm.name}/{mode}{label}: {len(arm_rows)} samples in {elapsed:.1f}s", flush=True)
        return ArmResult(arm.name, mode, predictions, elapsed, arm.adapter_path, arm.adapter_version)

    try:
        for arm in arms:
            if arm.adapter_path is not None:
                snapshot = AdapterSnapshot.from_dir(arm.adapter_path, arm.adapter_version or 0)
                ray.get(engine.load_adapter.remote(snapshot))
            # Untimed warm-up: the engine's first batch and a new adapter's first use pay one-off costs.
            warm_up = encode_eval_prompt(tokenizer, rows[0]["prompt"], modes[0], data_format)[
                : model_cfg.max_model_len - 2
            ]
            ray.get(engine.complete.remote([warm_up], 1, None, arm.adapter_path is not None))

            for mode in modes:
                results.append(arm_result(arm, rows, mode, ""))
            for name, (extra_rows, mode) in (extra or {}).items():
                extra_results[name].append(arm_result(arm, extra_rows, mode, f" on {name}"))
    finally:
        group.shutdown()
    return results, extra_results
