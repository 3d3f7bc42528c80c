"""ZeRO-3 learner ranks, two processes over gloo without Ray: the base is loaded partitioned (zero.Init), uneven shards
do not hang, snapshots hold the adapter, a checkpoint (LoRA shards + optimizer) restores the weights it saved.

Every weight is partitioned (persistence threshold 0), so each forward gathers shards from both ranks: a rank with
fewer log-prob forwards than the other, or a snapshot that did not gather, would hang or save empty tensors.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path

import pytest

WORLD = 2
PROMPTS = ["L1 KERNEL INFO: job started", "L2 KERNEL FATAL: machine check", "L3 APP INFO: ok", "L4 KERNEL: halt"]
COMPLETION = "<think>the line</think><answer>normal</answer>"


def _tiny_model(root: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pipelines.prompts.render import SYSTEM_PROMPT
    from rl_actors.tiny_model import train_tokenizer

    tokenizer = train_tokenizer([SYSTEM_PROMPT, *PROMPTS, COMPLETION, "normal anomalous"], 300)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def _rank(rank: int, model_dir: str, port: int, results, checkpoint: str) -> None:
    """One learner rank: rank 0 gets three pairs, rank 1 none (log-probs) or one (GRPO)."""
    from safetensors.torch import load

    from contract.chat_tokens import chat_token_ids
    from pipelines.prompts.render import SYSTEM_PROMPT
    from rl_actors.batch import Sample
    from rl_actors.config import AlgoConfig, LearnerConfig, ModelConfig
    from rl_actors.learner import LearnerCore
    from rl_actors.sequences import encode_completion

    learner_cfg = LearnerConfig(
        zero_stage=3, zero3_param_persistence_threshold=0, micro_batch_size=2, logprob_micro_batch_size=1
    )
    algo = AlgoConfig(kl_coef=0.1)  # the reference pass runs inside grpo_step, one forward per sample
    core = LearnerCore(model_dir, ModelConfig(path=model_dir, lora_rank=4), learner_cfg, algo, 4, 1e-2, None, rank, 2)
    assert core.model is None  # under ZeRO-3 nothing is loaded before the process group exists
    core.init_engine("127.0.0.1", port)

    def tensors(snapshot):
        if snapshot is None:
            return None
        data = next(v for k, v in snapshot.files.items() if k.endswith(".safetensors"))
        return {name: tuple(t.shape) for name, t in load(data).items()}

    system = {"role": "system", "content": SYSTEM_PROMPT}
    pairs = [
        (
            chat_token_ids(core.tokenizer, [system, {"role": "user", "content": p}]),
            encode_completion(core.tokenizer, COMPLETION),
        )
        for p in PROMPTS
    ]
    out = {"initial": tensors(core.snapshot(0)), "load": core.load_report}
    mine = pairs[:3] if rank == 0 else []
    out["logprobs"] = core.logprobs(mine)
    out["reference"] = core.logprobs(mine, reference=True)
    shard = [0, 1, 2] if rank == 0 else [3]
    samples = [Sample(i, 0, i, *pairs[i], [0.0] * len(pairs[i][1]), advantage=1.0 - i) for i in shard]
    out["grpo"] = core.grpo_step(samples)
    out["after"] = core.logprobs(pairs[:1])  # the same pair on both ranks: the same gathered weights
    out["final"] = tensors(core.snapshot(1))
    core.save_checkpoint(checkpoint)  # every rank writes its partition
    core.grpo_step(samples)
    out["moved"] = core.logprobs(pairs[:1])
    core.load_checkpoint(checkpoint)
    out["restored"] = core.logprobs(pairs[:1])
    results.put((rank, out))


def _flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


@pytest.mark.slow
def test_zero3_ranks_with_uneven_shards_step_and_snapshot_the_gathered_adapter(tmp_path, free_port):
    model_dir = str(_tiny_model(tmp_path / "model"))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_port()
    checkpoint = str(tmp_path / "checkpoint")
    procs = [context.Process(target=_rank, args=(r, model_dir, port, results, checkpoint)) for r in range(WORLD)]
    for proc in procs:
        proc.start()
    outputs = {}
    try:
        for _ in range(WORLD):
            rank, out = results.get(timeout=180)  # a rank left waiting in a collective never reports
            outputs[rank] = out
    except queue.Empty:
        pytest.fail(f"ranks {sorted(set(range(WORLD)) - set(outputs))} did not finish: a collective hung")
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    zero, one = outputs[0], outputs[1]
    for out in (zero, one):  # loaded under zero.Init: each rank only ever held its half of the base's weights
        load = out["load"]
        assert load["partitioned_at_load"] and load["local_elements"] * WORLD <= load["full_elements"] + WORLD * 64
    assert zero["initial"] and all(0 not in shape for shape in zero["initial"].values())
    assert zero["final"].keys() == zero["initial"].keys() and zero["final"] == zero["initial"]
    assert one["initial"] is None and one["final"] is None  # rank 1 gathered, rank 0 saved
    assert [len(lp) for lp in zero["logprobs"]] == [len(lp) for lp in zero["reference"]] and len(zero["logprobs"]) == 3
    assert one["logprobs"] == [] and one["reference"] == []
    assert _flat(zero["logprobs"]) == pytest.approx(_flat(zero["reference"]), abs=1e-6)  # LoRA B starts at zero
    assert _flat(zero["after"]) == pytest.approx(_flat(one["after"]), abs=1e-6)
    assert _flat(zero["after"]) != pytest.approx(_flat(zero["logprobs"][:1]), abs=1e-4)  # the step moved the adapter
    for out in (zero, one):  # a second step moved the weights again; the checkpoint brought back the saved ones
        assert _flat(out["moved"]) != pytest.approx(_flat(out["after"]), abs=1e-4)
        assert _flat(out["restored"]) == pytest.approx(_flat(out["after"]), abs=1e-6)
