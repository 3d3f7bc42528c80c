"""The real SmolLM2 tokenizer through everything that once assumed the tiny one: tags, round trips, rewards, chat.

Needs the converted model (`make base-model`, which `make test` runs first); skipped with that hint otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contract.chat_tokens import chat_token_ids
from contract.completion_format import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    SPECIAL_TAGS,
    VERDICTS,
    answer_token_budget,
    parse_completion,
    render_completion,
)
from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT, build_messages
from pipelines.prompts.rows import rows_in_process
from pipelines.prompts.teacher import sft_examples
from reward_workers.config import RewardConfig
from reward_workers.registry import RewardInput
from reward_workers.scorer import RewardScorer
from rl_actors.base_models import MARKER_FILE
from rl_actors.sequences import assistant_end_id, encode_completion

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("LOGRL_CACHE_DIR", REPO / ".cache")) / "models" / "smollm2-135m"


@pytest.fixture(scope="module")
def tokenizer():
    if not (MODEL_DIR / MARKER_FILE).is_file():
        pytest.skip(f"converted SmolLM2 absent at {MODEL_DIR}: run `make base-model` (make test builds it first)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def bgl_rows() -> list[dict]:
    """Prompt rows of the bundled BGL sample (20-line windows, rule-teacher rationales), built without Ray."""
    return rows_in_process(REPO / "data" / "bgl" / "BGL_2k.log", "bgl", 20, 400)


def test_tags_are_several_ordinary_tokens(tokenizer):
    from serving.detect import check_tags_survive_decoding

    for tag in SPECIAL_TAGS:
        ids = _ids(tokenizer, tag)
        assert len(ids) == 3, (tag, tokenizer.convert_ids_to_tokens(ids))
        assert not set(ids) & set(tokenizer.all_special_ids)
    check_tags_survive_decoding(tokenizer)  # not special: decoding with special tokens skipped keeps them


def test_teacher_completions_round_trip_to_identical_parses_and_rewards(tokenizer, bgl_rows):
    examples = sft_examples(bgl_rows, fast_fraction=0.5, seed=0)
    assert {e["completion"].startswith(ANSWER_OPEN) for e in examples} == {True, False}  # both modes covered
    scorer = RewardScorer(RewardConfig())
    originals, decoded = [], []
    for example, row in zip(examples, bgl_rows):
        text = example["completion"]
        ids = encode_completion(tokenizer, text)
        back = tokenizer.decode(ids[:-1], skip_special_tokens=False)
        assert back == text
        # vLLM's text of a finished sample leaves the end token out; decoding it away must change nothing either.
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        assert parse_completion(back) == parse_completion(text) and parse_completion(back).well_formed
        anomaly_lines = tuple(row["anomaly_lines"])
        originals.append(RewardInput(row["prompt"], text, row["label"], row["reference"], None, anomaly_lines))
        decoded.append(RewardInput(row["prompt"], back, row["label"], row["reference"], None, anomaly_lines))
    assert scorer.score(decoded) == scorer.score(originals)


@pytest.mark.parametrize(
    "text",
    [
        render_completion('L3 "data TLB error interrupt" (KERNEL FATAL) … “quoted” — ünïcode', "anomalous"),
        render_completion('L1 "ciod: failed to read message prefix on control stream"', "normal", answer_first=True),
        "<think> spaced  out \n reasoning </think>\n<answer> Anomalous </answer>\n",
        "<think>x</think><answer>maybe</answer>",  # malformed: unknown verdict
        "<think>a</think><answer>normal</answer><answer>normal</answer>",  # malformed: repeated tag
        "<think>unclosed <answer>normal",
    ],
)
def test_edge_completions_parse_identically_after_the_round_trip(tokenizer, text):
    back = tokenizer.decode(_ids(tokenizer, text), skip_special_tokens=False)
    assert back == text and parse_completion(back) == parse_completion(text)


def test_completions_end_with_the_token_the_chat_template_closes_a_turn_with(tokenizer):
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert assistant_end_id(tokenizer) == im_end == tokenizer.eos_token_id
    completion = render_completion('L1 "x y z"', "normal")
    assert encode_completion(tokenizer, completion)[-1] == im_end
    chat = build_messages("L1 KERNEL INFO: x y z") + [{"role": "assistant", "content": completion}]
    assert completion + "<|im_end|>" in tokenizer.apply_chat_template(chat, tokenize=False)


@pytest.mark.parametrize("fast", [False, True])
def test_the_models_own_template_renders_our_system_prompt_and_no_default(tokenizer, fast):
    ids = chat_token_ids(tokenizer, build_messages("L1 KERNEL INFO: x y z", fast=fast))
    text = tokenizer.decode(ids, skip_special_tokens=False)
    system = FAST_SYSTEM_PROMPT if fast else SYSTEM_PROMPT
    assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nLog session:\n")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "SmolLM" not in text and text.count("<|im_start|>system") == 1


def test_fast_mode_prefill_and_budget_fit_this_tokenizer(tokenizer):
    from evaluation.inference import FAST_MODE, encode_eval_prompt, fast_token_budget, full_completion

    ids = encode_eval_prompt(tokenizer, "L1 KERNEL INFO: x y z", FAST_MODE)
    assert tokenizer.decode(ids, skip_special_tokens=False).endswith("<|im_start|>assistant\n<answer>")
    prefix = len(_ids(tokenizer, ANSWER_OPEN))
    for verdict in VERDICTS:
        answer = _ids(tokenizer, f"{ANSWER_OPEN}{verdict}{ANSWER_CLOSE}")
        assert answer[:prefix] == _ids(tokenizer, ANSWER_OPEN)  # the prefill's tokens are a prefix of the answer's
        continuation = tokenizer.decode(answer[prefix:], skip_special_tokens=False)
        assert parse_completion(full_completion(FAST_MODE, continuation)).verdict == verdict
        assert len(answer) - prefix <= answer_token_budget(lambda t: _ids(tokenizer, t))
    # "anomalous</answer>" alone is 6 tokens here (the old constant 8 left 2 to spare); spellings with case and
    # whitespace the parser accepts need up to 10.
    assert len(_ids(tokenizer, f"{ANSWER_OPEN}anomalous{ANSWER_CLOSE}")) - prefix == 6
    assert fast_token_budget(tokenizer) == answer_token_budget(lambda t: _ids(tokenizer, t)) == 10
    assert fast_token_budget(tokenizer, 24) == 24


def test_lora_targets_come_from_the_architecture(tokenizer):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rl_actors.adapters import lora_target_modules

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(MODEL_DIR))
    assert model.config.tie_word_embeddings  # lm_head is the embedding: it must not get a LoRA
    targets = lora_target_modules(model)
    assert targets == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
