"""The tiny model's pretraining draws a fresh perturbed view per draw, not one fixed text per row."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.prompts.domain_teacher import DomainTeacher
from pipelines.prompts.rows import rows_in_process
from rl_actors.config import TinyModelConfig

BGL = Path(__file__).resolve().parents[2] / "data" / "bgl" / "BGL_2k.log"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return rows_in_process(BGL, "bgl", 20, 400, DomainTeacher())[:12]


def tiny(rows, cfg):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([r["prompt"] for r in rows] + [r["reference"] for r in rows], 400)
    shape = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(shape), tokenizer


def test_every_pretraining_draw_gets_its_own_view(rows):
    from pipelines.prompts.augment import augmented
    from rl_actors.tiny_model import pretrain

    cfg = TinyModelConfig(pretrain_steps=3, pretrain_batch_size=4)
    model, tokenizer = tiny(rows, cfg)
    seen: list[tuple[str, str]] = []

    def view(row: dict, key: str) -> dict:
        out = augmented(row, key, seed=0, probability=1.0, max_offset=50, max_extra=2)
        seen.append((key, out["prompt"]))
        return out

    loss = pretrain(model, tokenizer, rows, cfg, view=view)
    assert loss == loss and loss > 0  # a number, not NaN
    keys = [key for key, _ in seen]
    assert len(keys) == 3 * 4 and len(set(keys)) == len(keys)  # one draw key per sequence, never reused
    assert len({prompt for _, prompt in seen}) > 4  # views differ between draws


class CountingRows(list):
    """Rows that count how often one is read by index (how `pretrain` builds a sequence from a row)."""

    reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def test_without_a_view_each_row_is_built_once_as_stored_and_reused(rows):
    from rl_actors.tiny_model import pretrain

    cfg = TinyModelConfig(pretrain_steps=5, pretrain_batch_size=4)
    model, tokenizer = tiny(rows, cfg)
    counted = CountingRows(rows)
    assert pretrain(model, tokenizer, counted, cfg) > 0
    assert counted.reads == len(rows)  # 20 sequences drawn over 5 steps from 12 rows, each row tokenised once
