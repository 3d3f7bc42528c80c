"""Build a tiny local policy model: a BPE tokenizer trained on the log prompts and a small Llama."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from contract.completion_format import SPECIAL_TAGS
from pipelines.prompts.store import iter_examples, load_examples
from rl_actors.config import TinyModelConfig

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Roles open a turn, EOS closes it; the assistant turn ends with EOS, which stops generation.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] != 'assistant' %}<|eos|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus_texts(example_files: Iterable[str | Path]) -> Iterable[str]:
    """Texts the tokenizer learns from: prompts and teacher rationales of the prepared examples."""
    from pipelines.prompts.render import FAST_SYSTEM_PROMPT, SYSTEM_PROMPT

    yield SYSTEM_PROMPT
    yield FAST_SYSTEM_PROMPT
    for path in example_files:
        for row in iter_examples(path, ["prompt", "reference"]):
            yield row["prompt"]
            yield row["reference"] + " normal anomalous"


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE and wrap it as a HF fast tokenizer with the chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    # The format tags are single tokens but not "special": decoding must keep them in the text.
    bpe.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in SPECIAL_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD, chat_template=CHAT_TEMPLATE
    )


RowView = Callable[[dict, str], dict]  # (row, draw key) -> the row as training sees it for that draw


def pretrain(
    model,
    tokenizer,
    rows: list[dict],
    cfg: TinyModelConfig,
    anomalous_share: float | None = None,
    view: RowView | None = None,
) -> float:
    """Full-parameter causal-LM steps on chat-formatted training sessions and their teacher completions.

    This plays the part of an instruction-tuned base: a random tiny model cannot learn the answer format
    through LoRA alone in a CPU-sized budget. Only the train split is used; the loss is on every token.
    `view` gives each draw its own perturbed view (shifted line numbers, reordered groups: the views SFT and GRPO
    draw), so line numbers must be read from the prompt, not remembered with the text.
    """
    import torch

    from contract.chat_tokens import chat_token_ids
    from pipelines.prompts.teacher import fast_mode_draws, sft_example
    from rl_actors.sampling import PromptSampler
    from rl_actors.sequences import encode_completion, pad_pairs, token_logprobs

    fast = fast_mode_draws(len(rows), 0.5, cfg.seed)

    def sequence(index: int, key: str) -> list[int]:
        row = view(rows[index], key) if view else rows[index]
        example = sft_example(row, fast[index])
        return chat_token_ids(tokenizer, example["messages"]) + encode_completion(tokenizer, example["completion"])

    fixed = None if view else [sequence(i, "") for i in range(len(rows))]
    sampler = PromptSampler([row["label"] for row in rows], cfg.seed, anomalous_share)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.pretrain_lr, total_steps=cfg.pretrain_steps)
    model.train()
    loss = torch.zeros(())
    for step in range(cfg.pretrain_steps):
        if step and step % 100 == 0:
            print(f"[model] pretraining step {step}/{cfg.pretrain_steps}, loss {float(loss.detach()):.3f}", flush=True)
        picks = sampler.next(min(cfg.pretrain_batch_size, len(rows)))
        seqs = [fixed[i] if fixed else sequence(i, f"pretrain:{step}:{j}") for j, i in enumerate(picks)]
        batch = pad_pairs([(seq[:1], seq[1:]) for seq in seqs], tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        mask = batch["completion_mask"]
        loss = -(token_logprobs(logits, batch["input_ids"]) * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    return float(loss.detach())


def build_tiny_model(
    example_files: list[str | Path],
    out_dir: str | Path,
    cfg: TinyModelConfig,
    max_len: int,
    anomalous_share: float | None = None,
    view: RowView | None = None,
) -> Path:
    """Write a HF folder (tokenizer + small LlamaForCausalLM, optionally pretrained) usable by vLLM and PEFT."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = train_tokenizer(corpus_texts(example_files), cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=max_len,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if cfg.pretrain_steps:
        rows = load_examples(example_files[0])  # the train split only
        loss = pretrain(model, tokenizer, rows, cfg, anomalous_share, view)
        print(f"[model] pretrained {cfg.pretrain_steps} steps, final loss {loss:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
