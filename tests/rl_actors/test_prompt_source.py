"""The prompt source the rollout engines build groups from: the driver sends numbers, the engine makes the same
prompt and reward context the driver would have made. Pure: no Ray, no vLLM (a character 'tokenizer')."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from contract.sharding import split_evenly
from pipelines.prompts.augment import augmented
from pipelines.prompts.domain_teacher import DomainTeacher
from pipelines.prompts.rows import rows_in_process
from pipelines.prompts.store import PromptTable, write_rows
from rl_actors.config import AugmentConfig
from rl_actors.prompt_source import GroupBatch, PromptSource, training_view

BGL = Path(__file__).resolve().parents[2] / "data" / "bgl" / "BGL_2k.log"


def encode(prompt: str) -> list[int]:
    return [ord(c) % 97 for c in prompt]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return rows_in_process(BGL, "bgl", 20, 400, DomainTeacher())


def test_a_group_batch_is_two_integer_arrays_cut_into_contiguous_shards():
    batch = GroupBatch.of(30, [4, 1, 4, 0, 2])
    assert batch.group_id.tolist() == [30, 31, 32, 33, 34] and batch.prompt_index.dtype == np.int64
    shards = [batch[s:e] for s, e in split_evenly(len(batch), 2)]
    assert [s.prompt_index.tolist() for s in shards] == [[4, 1, 4], [0, 2]]
    assert len(pickle.dumps(batch)) < 1000  # numbers only: no prompt travels from the driver
    with pytest.raises(TypeError):
        batch[0]


def test_each_group_gets_its_own_view_token_ids_and_reward_context(rows):
    augment = AugmentConfig(probability=1.0)
    source = PromptSource(rows, "unused", "bgl", augment, seed=3, room=10**6, encode=encode)
    a, b = source.groups(GroupBatch.of(7, [0, 0]))  # one row drawn twice: two groups, two views
    for group in (a, b):
        view = augmented(rows[0], group.group_id, 3, 1.0, augment.max_line_offset, augment.max_extra_routine_lines)
        assert group.prompt_ids == encode(view["prompt"]) and group.context.prompt == view["prompt"]
        assert group.context.label == view["label"] and group.context.reference == view["reference"]
        assert group.context.anomaly_lines == tuple(view["anomaly_lines"]) and group.context.completion == ""
    assert a.prompt_ids != b.prompt_ids  # keyed by group id
    assert source.group(7, 0) == a  # deterministic: a replaced engine rebuilds the same group


def test_a_view_too_long_for_the_model_falls_back_to_the_stored_row(rows):
    stored = len(encode(rows[0]["prompt"]))
    tight = PromptSource(rows, "unused", "bgl", AugmentConfig(probability=1.0), 0, room=stored, encode=encode)
    grown = [g for g in range(20) if len(encode(tight.view(0, g)["prompt"])) > stored]
    assert not grown  # every view either fits or is the stored row
    assert any(tight.view(0, g) is rows[0] for g in range(20))


def test_template_sets_are_used_as_stored():
    row = {"prompt": "Template: x", "label": "normal", "reference": "r"}
    assert training_view(row, 5, "templates", AugmentConfig(probability=1.0), 0) is row


def test_the_source_travels_without_its_tokenizer_and_a_table_without_its_cached_rows(rows, tmp_path):
    write_rows(tmp_path / "train", rows)
    table = PromptTable(tmp_path / "train")
    source = PromptSource(table, "unused", "bgl", AugmentConfig(), 0, 10**6, encode=encode)
    before = source.group(0, 3)
    assert table._cache  # the driver read a row group
    copy = pickle.loads(pickle.dumps(source))
    assert copy._cached is None and not copy.rows._cache and copy.rows.labels == table.labels
    assert copy.group(0, 3) == before  # the worker reads the same row from the same path
