"""Rollout actors: a vLLM engine with LoRA that samples G completions per prompt with their logprobs."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import ray

from contract.adapter_store import version_of_lora_int_id
from contract.completion_format import completion_score
from rl_actors.adapters import AdapterSnapshot, prune_adapter_versions
from rl_actors.batch import PromptGroup, Sample
from rl_actors.config import ModelConfig, RolloutConfig, vllm_max_lora_rank
from rl_actors.engine_internals import evict_adapter
from rl_actors.prompt_source import GroupBatch, PromptSource
from rl_actors.sequences import assistant_end_id

SCORE_LOGPROBS = 20  # top log-probs per generated token when scoring (vLLM's default max_logprobs)


def samples_from_outputs(
    groups: Sequence[PromptGroup], outputs: Sequence, policy_version: int | None = None
) -> list[Sample]:
    """vLLM's request outputs (one per group, G completions each) as samples naming their group and index, and the
    adapter version that sampled them."""
    if len(outputs) != len(groups):
        raise ValueError(f"{len(outputs)} vLLM outputs for {len(groups)} prompt groups")
    samples = []
    for group, out in zip(groups, outputs):
        for sample_index, sample in enumerate(out.outputs):
            ids = list(sample.token_ids)
            logprobs = [step[tok].logprob for step, tok in zip(sample.logprobs, ids)]
            samples.append(
                Sample(
                    group_id=group.group_id,
                    sample_index=sample_index,
                    prompt_index=group.prompt_index,
                    prompt_ids=group.prompt_ids,
                    completion_ids=ids,
                    rollout_logprobs=logprobs,
                    text=sample.text,
                    finish_reason=sample.finish_reason,
                    policy_version=policy_version,
                )
            )
    return samples


def grounded_constraint(group: PromptGroup):
    """vLLM's structured-output constraint for a group: the evidence grammar of the prompt it is sampled on."""
    from vllm.sampling_params import StructuredOutputsParams

    from contract.evidence_grammar import grounded_grammar

    if group.context is None:
        raise ValueError(f"group {group.group_id} has no prompt text: grounded rollouts need training groups")
    return StructuredOutputsParams(grammar=grounded_grammar(group.context.prompt))


def request_seeds(seed: int, groups: Sequence[PromptGroup]) -> list[int]:
    """One sampling seed per prompt group, from the step's seed and the group id: a prompt drawn twice in a step (two
    groups) or sampled by two engines gets different completions, and a rerun of the step the same ones."""
    return [hash((seed, group.group_id)) & 0x7FFF_FFFF for group in groups]


def engine_args(model_path: str, model_cfg: ModelConfig, rollout_cfg: RolloutConfig, seed: int) -> dict:
    """vLLM `LLM(...)` arguments of one rollout engine."""
    args = dict(
        model=model_path,
        dtype=rollout_cfg.dtype,
        enforce_eager=rollout_cfg.enforce_eager,
        enable_lora=True,
        max_lora_rank=vllm_max_lora_rank(model_cfg.lora_rank),  # vLLM accepts only some ranks: the next one up
        max_loras=1,
        max_model_len=model_cfg.max_model_len,
        tensor_parallel_size=rollout_cfg.tensor_parallel_size,
        gpu_memory_utilization=rollout_cfg.gpu_memory_utilization,
        seed=seed,
        # Sample logprobs after temperature scaling: the learner divides its logits by the same temperature.
        logprobs_mode="processed_logprobs",
    )
    if rollout_cfg.sleeps:
        args["enable_sleep_mode"] = True  # level-1 sleep while the learner works (colocated on one GPU)
    if rollout_cfg.tensor_parallel_size > 1:
        # The actor already holds its GPUs (Ray set CUDA_VISIBLE_DEVICES to them): vLLM's own worker processes use
        # those. Its Ray executor, which vLLM picks inside a Ray job, would ask Ray for GPUs the actor holds.
        args["distributed_executor_backend"] = "mp"
    return args


class RolloutEngine:
    """Pure core of a rollout actor: owns one vLLM engine and the adapter version it samples with."""

    def __init__(
        self,
        model_path: str,
        model_cfg: ModelConfig,
        rollout_cfg: RolloutConfig,
        seed: int = 0,
        keep_adapters: int | None = None,
        prompts: PromptSource | None = None,
    ):
        """`prompts`: the run's training rows, for groups sent as `GroupBatch` (training); None serves prompt ids."""
        from transformers import AutoTokenizer
        from vllm import LLM

        if rollout_cfg.threads:
            import torch

            torch.set_num_threads(rollout_cfg.threads)  # before vLLM's CPU worker freezes the thread count
        if rollout_cfg.num_gpus_per_worker == 0:
            from rl_actors.vllm_cpu_lora import use_grouped_cpu_lora

            use_grouped_cpu_lora()  # vLLM's CPU LoRA ops copy weights per token: ~2x slower decoding
        self.cfg, self.seed = rollout_cfg, seed
        self.llm = LLM(**engine_args(model_path, model_cfg, rollout_cfg, seed))
        # Stop where the model's chat template closes an assistant turn (what SFT completions end with), even if
        # that token is not the tokenizer's EOS.
        self.stop_token_ids = [assistant_end_id(AutoTokenizer.from_pretrained(model_path))]
        self.adapter_dir = tempfile.mkdtemp(prefix="logrl-adapters-")
        self.keep_adapters = keep_adapters  # versions kept in `adapter_dir` (None: all)
        self.lora = None
        self.prompts = prompts

    @property
    def adapter_version(self) -> int | None:
        return None if self.lora is None else version_of_lora_int_id(self.lora.lora_int_id)

    def load_adapter(self, snapshot: AdapterSnapshot) -> int:
        """Switch to a new adapter version; the old one is evicted so stale weights are never served."""
        from vllm.lora.request import LoRARequest

        path = snapshot.write(self.adapter_dir)
        if self.lora is not None:
            evict_adapter(self.llm, self.lora.lora_int_id)
        self.lora = LoRARequest(snapshot.name, snapshot.lora_int_id, str(path))
        # vLLM reads the folder when the adapter is first used: the loaded version is never pruned.
        prune_adapter_versions(self.adapter_dir, self.keep_adapters, protected={snapshot.version})
        return snapshot.version

    def sleep(self) -> None:
        """Give the GPU to the learner: weights offloaded to CPU memory, KV cache dropped (vLLM sleep level 1)."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        """Weights back on the GPU and the KV cache reallocated, before the adapter sync loads the new version."""
        self.llm.wake_up()

    def generate(self, prompts: Sequence[PromptGroup | tuple[int, list[int]]], seed: int | None = None) -> list[Sample]:
        """Sample G completions for each prompt group; logprobs are at the sampling temperature.

        A `(prompt_index, prompt_ids)` pair is a group whose id is its prompt index.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        groups = [PromptGroup.coerce(item) for item in prompts]
        common = dict(
            n=self.cfg.group_size,
            max_tokens=self.cfg.max_new_tokens,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            logprobs=0,
            skip_special_tokens=False,
            stop_token_ids=self.stop_token_ids,
        )
        # vLLM 0.32 on CPU crashes ("CPU Generator does not use offset") when a seeded request's prefill is
        # chunked; there, sampling draws from the engine's own generator, seeded once at construction.
        per_group = [dict(common) for _ in groups]
        if seed is not None and self.cfg.num_gpus_per_worker > 0:  # on GPU: a seed per group (per request)
            for kwargs, group_seed in zip(per_group, request_seeds(seed, groups)):
                kwargs["seed"] = group_seed
        if self.cfg.grounded:  # each group under its own prompt's evidence grammar (grounded rollouts)
            for kwargs, group in zip(per_group, groups):
                kwargs["structured_outputs"] = grounded_constraint(group)
        params = [SamplingParams(**kwargs) for kwargs in per_group]
        if seed is not None and self.cfg.num_gpus_per_worker == 0:
            import torch

            # The engine runs in this process on CPU: re-seed its generator per call, so a step's samples depend
            # on (step seed, worker) only, never on earlier steps (a resumed run samples as an uninterrupted one).
            torch.manual_seed(hash((seed, self.seed)) & 0x7FFF_FFFF)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=g.prompt_ids) for g in groups],
            params,
            lora_request=self.lora,
            use_tqdm=False,
        )
        return samples_from_outputs(groups, outputs, self.adapter_version)

    def score(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Logprob of each completion token given its prompt, under the current adapter (for sync checks)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p + c) for p, c in pairs], params, lora_request=self.lora, use_tqdm=False
        )
        scores = []
        for (prompt, completion), out in zip(pairs, outputs):
            full = prompt + completion
            scores.append([out.prompt_logprobs[i][full[i]].logprob for i in range(len(prompt), len(full))])
        return scores

    def complete(
        self, prompts: list[list[int]], max_tokens: int, stop: list[str] | None = None, use_adapter: bool = True
    ) -> list[tuple[str, list[int], str | None]]:
        """One greedy completion per prompt: (text, token ids, finish reason); a hit stop string stays in the text."""
        outputs = self._greedy(prompts, max_tokens, stop, use_adapter, top_logprobs=0)
        return [(o.text, list(o.token_ids), o.finish_reason) for o in outputs]

    def complete_scored(
        self,
        prompts: list[list[int]],
        max_tokens: int,
        stop: list[str] | None = None,
        use_adapter: bool = True,
        prefix: str = "",
        grammars: list[str] | None = None,
    ) -> list[tuple[str, list[int], str | None, float | None]]:
        """`complete`, plus P(anomalous) read from the top log-probs at the verdict token (`prefix`: what the prompt
        already wrote of the answer, fast mode's `<answer>`); None where the completion has no verdict token.
        `grammars`: one structured-output grammar (xgrammar EBNF) per prompt that its completion must follow."""
        outputs = self._greedy(prompts, max_tokens, stop, use_adapter, top_logprobs=SCORE_LOGPROBS, grammars=grammars)
        scored = []
        for o in outputs:
            steps = o.logprobs or []
            texts = [step[token].decoded_token or "" for token, step in zip(o.token_ids, steps)]
            tops = [{lp.decoded_token or "": lp.logprob for lp in step.values()} for step in steps]
            scored.append((o.text, list(o.token_ids), o.finish_reason, completion_score(texts, tops, prefix)))
        return scored

    def _greedy(
        self,
        prompts: list[list[int]],
        max_tokens: int,
        stop: list[str] | None,
        use_adapter: bool,
        top_logprobs: int,
        grammars: list[str] | None = None,
    ) -> list:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        common = dict(
            n=1,
            max_tokens=max_tokens,
            temperature=0.0,
            stop=stop,
            # Keeps a hit stop string (`</answer>`), but with it vLLM would also write the end-of-turn token into
            # the text (`...</answer><|im_end|>`), which no parser accepts: only keep it when there are stop strings.
            include_stop_str_in_output=bool(stop),
            skip_special_tokens=False,
            stop_token_ids=self.stop_token_ids,
            logprobs=top_logprobs or None,
        )
        if grammars is None:
            params = SamplingParams(**common)
        else:
            if len(grammars) != len(prompts):
                raise ValueError(f"{len(grammars)} grammars for {len(prompts)} prompts")
            constraint = [StructuredOutputsParams(grammar=grammar) for grammar in grammars]
            params = [SamplingParams(**common, structured_outputs=c) for c in constraint]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompts],
            params,
            lora_request=self.lora if use_adapter else None,
            use_tqdm=False,
        )
        return [o.outputs[0] for o in outputs]


class RolloutActor(RolloutEngine):
    """The Ray shell: also samples into columns that stay in the object store for the reward and learner actors."""

    @ray.method(num_returns=2)
    def generate_columns(self, groups: GroupBatch | Sequence[PromptGroup], seed: int | None = None):
        """`generate`, returned as (metadata the driver reads, `SampleColumns` it only passes on by reference). A
        `GroupBatch` (group ids and row indices) is built into prompts here, from the engine's `PromptSource`."""
        from rl_actors.columns import SampleColumns

        if isinstance(groups, GroupBatch):
            if self.prompts is None:
                raise ValueError("this rollout engine was started without the run's prompt source")
            groups = self.prompts.groups(groups)
        groups = [PromptGroup.coerce(group) for group in groups]
        columns = SampleColumns.of(groups, self.generate(groups, seed))
        return columns.meta(), columns


RolloutWorker = ray.remote(RolloutActor)
