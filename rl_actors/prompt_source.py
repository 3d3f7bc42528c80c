"""Where a group's prompt comes from, built by the worker that samples it.

The driver draws a step's prompts as two integer arrays (`GroupBatch`: group ids, row indices) and sends only those.
Each rollout engine holds a `PromptSource` (put into the object store once per run): it reads the training row,
makes the group's perturbed view (`train.augment`), tokenises its prompt and keeps the group's reward context (prompt,
label, reference, anomaly lines) beside the samples, so neither the prompt text nor its token ids pass the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from contract.log_formats import TEMPLATES_FORMAT
from pipelines.prompts.augment import augmented
from reward_workers.registry import RewardInput
from rl_actors.batch import PromptGroup
from rl_actors.config import AugmentConfig

PROMPT_CACHE = 4096  # tokenised prompts kept per holder (a few MB)


@dataclass(frozen=True)
class GroupBatch:
    """A step's prompt groups as the driver holds them: group ids (unique over the run) and training-row indices."""

    group_id: np.ndarray  # int64
    prompt_index: np.ndarray  # int64

    @classmethod
    def of(cls, first_group_id: int, prompt_indices: Sequence[int]) -> GroupBatch:
        indices = np.asarray(prompt_indices, dtype=np.int64)
        return cls(np.arange(first_group_id, first_group_id + len(indices), dtype=np.int64), indices)

    def __len__(self) -> int:
        return len(self.group_id)

    def __getitem__(self, index: slice) -> GroupBatch:
        if not isinstance(index, slice):
            raise TypeError("a GroupBatch is cut into contiguous shards only")
        return GroupBatch(self.group_id[index], self.prompt_index[index])


def training_view(row: dict, key: str | int, data_format: str, augment: AugmentConfig, seed: int) -> dict:
    """A training row as SFT or a GRPO group sees it: perturbed (`train.augment`) for session formats, with a draw
    fixed by `key` and the run's seed; template sets as stored."""
    if data_format == TEMPLATES_FORMAT:
        return row
    return augmented(row, key, seed, augment.probability, augment.max_line_offset, augment.max_extra_routine_lines)


class PromptSource:
    """The training rows and how a group's prompt is made from one: its view, token ids and reward context.

    `rows` is a list or a lazy `PromptTable` (pickled as its path: the data folder must be readable wherever the
    engines run, as `model.path` is). The tokenizer is loaded where the source is first used, not pickled."""

    def __init__(
        self,
        rows: Sequence[dict],
        model_path: str,
        data_format: str,
        augment: AugmentConfig,
        seed: int,
        room: int,
        encode: Callable[[str], list[int]] | None = None,
    ):
        """`room`: the most prompt tokens a view may have (max_model_len - max_new_tokens); a longer view falls back
        to the stored row. `encode`: prompt text -> chat token ids (default: the model's tokenizer and template)."""
        self.rows, self.model_path, self.data_format = rows, model_path, data_format
        self.augment, self.seed, self.room = augment, seed, room
        self._encode = encode
        self._cached = None

    @classmethod
    def of(cls, cfg, rows: Sequence[dict]) -> PromptSource:
        """From the run's settings (model, data, rollout, train sections)."""
        room = cfg.model.max_model_len - cfg.rollout.max_new_tokens
        return cls(rows, cfg.model.path, cfg.data.format, cfg.train.augment, cfg.train.seed, room)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cached"] = None  # the tokenizer's cache does not travel; it is rebuilt where the source is used
        return state

    def prompt_ids(self, prompt: str) -> list[int]:
        """The chat token ids of a prompt (cached: a view drawn again is not encoded twice)."""
        if self._cached is None:
            encode = self._encode or self._default_encoder()
            self._cached = lru_cache(maxsize=PROMPT_CACHE)(encode)
        return self._cached(prompt)

    def _default_encoder(self) -> Callable[[str], list[int]]:
        from transformers import AutoTokenizer

        from contract.chat_tokens import chat_token_ids
        from pipelines.prompts.render import build_messages

        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        return lambda prompt: chat_token_ids(tokenizer, build_messages(prompt, data_format=self.data_format))

    def view(self, index: int, group_id: int) -> dict:
        """The row a group is sampled and scored on: its perturbed training view, fixed by the group id (the stored
        row when the view would leave no room to generate within max_model_len)."""
        row = self.rows[index]
        view = training_view(row, group_id, self.data_format, self.augment, self.seed)
        return view if view is row or len(self.prompt_ids(view["prompt"])) <= self.room else row

    def group(self, group_id: int, index: int) -> PromptGroup:
        """The group to sample: its prompt ids, and the context its samples are scored with."""
        row = self.view(index, group_id)
        anomaly_lines = row.get("anomaly_lines")
        context = RewardInput(
            row["prompt"],
            "",
            row["label"],
            row["reference"],
            None,
            None if anomaly_lines is None else tuple(anomaly_lines),
        )
        return PromptGroup(group_id, index, self.prompt_ids(row["prompt"]), context)

    def groups(self, batch: GroupBatch) -> list[PromptGroup]:
        return [self.group(g, i) for g, i in zip(batch.group_id.tolist(), batch.prompt_index.tolist())]
