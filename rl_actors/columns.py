"""The step's samples off the driver: columnar batches in the object store, fetched by the workers that use them.

The driver sends a rollout engine its groups as integers (`prompt_source.GroupBatch`); the engine builds their
prompts and returns two objects per call: `RolloutMeta` (what the driver reads: group ids, sample indices, row
indices, lengths, verdicts, as arrays) and `SampleColumns` (prompt and completion token ids, log-probs, texts, each
group's reward context: flat arrays), which stays in the object store as a reference. The driver hands reward actors
and learner ranks a `StepView` (references plus the positions they own) and they fetch the columns themselves; the
driver's own traffic is per-sample arrays of numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from contract.completion_format import parse_completion
from contract.sharding import split_evenly
from reward_workers.registry import RewardInput
from rl_actors.batch import PromptGroup, Sample

VERDICTS = {"normal": 0, "anomalous": 1}  # a parsed verdict as a code; -1: none


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class SampleColumns:
    """One engine's samples as flat arrays: prompts once per group, completions and log-probs per sample."""

    group_id: np.ndarray  # int64 [n]
    sample_index: np.ndarray  # int32 [n]
    prompt_index: np.ndarray  # int64 [n]
    prompt_of: np.ndarray  # int32 [n]: which of this batch's prompts
    prompt_tokens: np.ndarray  # int32, every prompt once, back to back
    prompt_offsets: np.ndarray  # int64 [prompts + 1]
    completion_tokens: np.ndarray  # int32, every completion back to back
    completion_offsets: np.ndarray  # int64 [n + 1]; log-probs use the same offsets
    rollout_logprobs: np.ndarray  # float32
    text: tuple[str, ...]
    finish_reason: tuple[str | None, ...]
    policy_version: int | None
    contexts: tuple[RewardInput | None, ...] = ()  # per prompt: what its samples are scored with

    @classmethod
    def of(cls, groups: Sequence[PromptGroup], samples: Sequence[Sample]) -> SampleColumns:
        position = {group.group_id: i for i, group in enumerate(groups)}
        completions = [s.completion_ids for s in samples]
        versions = {s.policy_version for s in samples}
        return cls(
            group_id=np.array([s.group_id for s in samples], dtype=np.int64),
            sample_index=np.array([s.sample_index for s in samples], dtype=np.int32),
            prompt_index=np.array([s.prompt_index for s in samples], dtype=np.int64),
            prompt_of=np.array([position[s.group_id] for s in samples], dtype=np.int32),
            prompt_tokens=np.fromiter((t for g in groups for t in g.prompt_ids), dtype=np.int32),
            prompt_offsets=_offsets([len(g.prompt_ids) for g in groups]),
            completion_tokens=np.fromiter((t for c in completions for t in c), dtype=np.int32),
            completion_offsets=_offsets([len(c) for c in completions]),
            rollout_logprobs=np.fromiter((x for s in samples for x in s.rollout_logprobs), dtype=np.float32),
            text=tuple(s.text for s in samples),
            finish_reason=tuple(s.finish_reason for s in samples),
            policy_version=versions.pop() if len(versions) == 1 else None,
            contexts=tuple(g.context for g in groups),
        )

    def __len__(self) -> int:
        return len(self.group_id)

    def prompt_ids(self, i: int) -> list[int]:
        p = int(self.prompt_of[i])
        return self.prompt_tokens[self.prompt_offsets[p] : self.prompt_offsets[p + 1]].tolist()

    def completion_ids(self, i: int) -> list[int]:
        return self.completion_tokens[self.completion_offsets[i] : self.completion_offsets[i + 1]].tolist()

    def reward_input(self, i: int) -> RewardInput:
        """Sample `i` as the reward functions see it: its group's context with its completion."""
        context = self.contexts[int(self.prompt_of[i])] if self.contexts else None
        if context is None:
            raise ValueError(f"group {int(self.group_id[i])} was sampled without a reward context (prompt ids only)")
        return replace(context, completion=self.text[i])

    def sample(self, i: int) -> Sample:
        lo, hi = self.completion_offsets[i], self.completion_offsets[i + 1]
        return Sample(
            group_id=int(self.group_id[i]),
            sample_index=int(self.sample_index[i]),
            prompt_index=int(self.prompt_index[i]),
            prompt_ids=self.prompt_ids(i),
            completion_ids=self.completion_tokens[lo:hi].tolist(),
            rollout_logprobs=self.rollout_logprobs[lo:hi].tolist(),
            text=self.text[i],
            finish_reason=self.finish_reason[i],
            policy_version=self.policy_version,
        )

    def meta(self) -> RolloutMeta:
        parsed = [parse_completion(text) for text in self.text]
        probe = (self.prompt_ids(0), self.completion_ids(0)) if len(self) else None
        return RolloutMeta(
            group_id=self.group_id,
            sample_index=self.sample_index,
            prompt_index=self.prompt_index,
            completion_tokens=np.diff(self.completion_offsets).astype(np.int32),
            truncated=np.array([r == "length" for r in self.finish_reason], dtype=bool),
            well_formed=np.array([p.well_formed for p in parsed], dtype=bool),
            verdict=np.array([VERDICTS.get(p.verdict, -1) for p in parsed], dtype=np.int8),
            policy_version=self.policy_version,
            probe=probe,
        )


@dataclass(frozen=True)
class RolloutMeta:
    """What the driver reads of a rollout: per sample its group, index, training row, length, whether it was cut at
    the token limit, well formed, its verdict; the sampling adapter version; one (prompt, completion) pair for sync
    checks."""

    group_id: np.ndarray
    sample_index: np.ndarray
    prompt_index: np.ndarray
    completion_tokens: np.ndarray
    truncated: np.ndarray
    well_formed: np.ndarray
    verdict: np.ndarray
    policy_version: int | None
    probe: tuple[list[int], list[int]] | None

    def __len__(self) -> int:
        return len(self.group_id)

    @classmethod
    def concat(cls, metas: Sequence[RolloutMeta]) -> RolloutMeta:
        versions = [m.policy_version for m in metas if len(m) and m.policy_version is not None]
        probe = next((m.probe for m in metas if m.probe is not None), None)
        arrays = {
            name: np.concatenate([getattr(m, name) for m in metas])
            for name in (
                "group_id",
                "sample_index",
                "prompt_index",
                "completion_tokens",
                "truncated",
                "well_formed",
                "verdict",
            )  # fmt: skip
        }
        return cls(**arrays, policy_version=min(versions) if versions else None, probe=probe)


@dataclass(frozen=True)
class LogprobColumns:
    """Per-sample log-prob lists as one flat array (a learner rank's reference log-probs for its shard)."""

    values: np.ndarray  # float32
    offsets: np.ndarray  # int64 [n + 1]

    @classmethod
    def of(cls, rows: Sequence[Sequence[float]]) -> LogprobColumns:
        return cls(np.fromiter((x for r in rows for x in r), dtype=np.float32), _offsets([len(r) for r in rows]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[float, ...]:
        return tuple(self.values[self.offsets[i] : self.offsets[i + 1]].tolist())


def _fetch(items: Sequence[Any]) -> list[Any]:
    """Object references fetched (by the worker that holds the view), anything else as is."""
    import ray

    refs = [i for i, item in enumerate(items) if isinstance(item, ray.ObjectRef)]
    fetched = dict(zip(refs, ray.get([items[i] for i in refs]))) if refs else {}
    return [fetched.get(i, item) for i, item in enumerate(items)]


@dataclass(frozen=True)
class Chunks:
    """Consecutive chunks covering a step's samples in order: (object ref or the object, its length) each."""

    items: tuple[Any, ...]
    sizes: tuple[int, ...]

    def spans(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """The (chunk, first, last + 1) pieces that cover positions [start, end), in order."""
        out, offset = [], 0
        for index, size in enumerate(self.sizes):
            lo, hi = max(start, offset), min(end, offset + size)
            if lo < hi:
                out.append((index, lo - offset, hi - offset))
            offset += size
        return out

    def narrowed(self, start: int, end: int) -> tuple[Chunks, int]:
        """Only the chunks positions [start, end) touch (the rest never travels), and the new start's offset."""
        spans = self.spans(start, end)
        if not spans:
            return Chunks((), ()), 0
        first = spans[0][0]
        kept = range(first, spans[-1][0] + 1)
        return Chunks(tuple(self.items[i] for i in kept), tuple(self.sizes[i] for i in kept)), sum(self.sizes[:first])


@dataclass(frozen=True)
class StepView:
    """Positions [start, end) of a step's samples, as references: a worker resolves it into the samples (learner)
    or reward inputs (reward actors) it needs. Slicing it (how shards are cut) copies no sample data."""

    rollout: Chunks
    start: int
    end: int
    reference: Chunks | None = None  # reference log-probs, chunked by the learner ranks that computed them
    reference_start: int = 0  # where this view's chunks begin among the step's positions (for `reference`)
    advantages: np.ndarray | None = None  # for [start, end)
    _rollout_start: int = 0  # where this view's rollout chunks begin among the step's positions

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, index: slice) -> StepView:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a StepView is cut into contiguous shards only")
        lo, hi, _ = index.indices(len(self))
        start, end = self.start + lo, self.start + max(lo, hi)
        rollout, shift = self.rollout.narrowed(start - self._rollout_start, end - self._rollout_start)
        reference, ref_shift = None, 0
        if self.reference is not None:
            reference, ref_shift = self.reference.narrowed(start - self.reference_start, end - self.reference_start)
        advantages = None if self.advantages is None else self.advantages[lo : lo + end - start]
        return replace(
            self,
            rollout=rollout,
            start=start,
            end=end,
            reference=reference,
            reference_start=self.reference_start + ref_shift,
            advantages=advantages,
            _rollout_start=self._rollout_start + shift,
        )

    def with_reference(self, chunks: Chunks) -> StepView:
        return replace(self, reference=chunks, reference_start=0)

    def with_advantages(self, advantages: np.ndarray) -> StepView:
        if len(advantages) != len(self):
            raise ValueError(f"{len(advantages)} advantages for {len(self)} samples")
        return replace(self, advantages=np.asarray(advantages, dtype=np.float64))

    def _pieces(self, chunks: Chunks, base: int) -> list[tuple[Any, int, int]]:
        fetched = _fetch(chunks.items)
        return [(fetched[c], lo, hi) for c, lo, hi in chunks.spans(self.start - base, self.end - base)]

    def samples(self) -> list[Sample]:
        """The samples of this view, with reference log-probs and advantages when it carries them (in a worker)."""
        samples = [
            cols.sample(i) for cols, lo, hi in self._pieces(self.rollout, self._rollout_start) for i in range(lo, hi)
        ]
        if self.reference is not None:
            samples = [replace(s, ref_logprobs=r) for s, r in zip(samples, self._reference_rows())]
        if self.advantages is not None:
            samples = [replace(s, advantage=float(a)) for s, a in zip(samples, self.advantages)]
        return samples

    def pairs(self) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, completion ids) of this view's samples (for log-prob passes)."""
        pieces = self._pieces(self.rollout, self._rollout_start)
        return [(cols.prompt_ids(i), cols.completion_ids(i)) for cols, lo, hi in pieces for i in range(lo, hi)]

    def _reference_rows(self) -> list[tuple[float, ...]]:
        pieces = self._pieces(self.reference, self.reference_start)
        return [lp.row(i) for lp, lo, hi in pieces for i in range(lo, hi)]

    def reward_inputs(self) -> list[RewardInput]:
        """What the reward functions see for each sample: its group's context (kept by the engine that sampled it)
        with the completion and, when the view carries them, the reference log-probs filled in."""
        pieces = self._pieces(self.rollout, self._rollout_start)
        inputs = [cols.reward_input(i) for cols, lo, hi in pieces for i in range(lo, hi)]
        if self.reference is not None:
            inputs = [replace(r, ref_logprobs=lp) for r, lp in zip(inputs, self._reference_rows())]
        return inputs


def learner_shards(total: int, ranks: int) -> list[int]:
    """Sizes of the learner ranks' contiguous shards of `total` samples (how `call_sharded` cuts them)."""
    return [end - start for start, end in split_evenly(total, ranks)]


@dataclass(frozen=True)
class StepBatch:
    """A step's rollout as the driver holds it: every sample's metadata, and a view of the columns in the store."""

    meta: RolloutMeta
    view: StepView

    @classmethod
    def of(cls, results: Sequence[tuple[RolloutMeta, Any]]) -> StepBatch:
        """From each engine's (metadata, columns reference), in rank order."""
        metas = [meta for meta, _ in results]
        chunks = Chunks(tuple(ref for _, ref in results), tuple(len(m) for m in metas))
        return cls(RolloutMeta.concat(metas), StepView(chunks, 0, sum(chunks.sizes)))

    def __len__(self) -> int:
        return len(self.meta)

    def keys(self) -> list[tuple[int, int]]:
        """(group id, sample index) of every sample, in batch order."""
        return list(zip(self.meta.group_id.tolist(), self.meta.sample_index.tolist()))
