"""Learner-only smoke check on a GPU: DeepSpeed + PEFT + NCCL at world size 1, ZeRO-2 and ZeRO-3 in bf16.

For a machine with CUDA torch, transformers, peft and deepspeed but no Ray or vLLM (the learner's core imports
neither). The base is randomly initialised from an architecture folder (config.json + tokenizer), so no weights
travel. Per variant: two SFT steps, one GRPO step (reference pass through the disabled adapter, KL on), the
adapter snapshot's tensors non-empty and finite, the snapshot reloaded into a plain PEFT model (no DeepSpeed)
gives the learner's log-probs, and a learner checkpoint saved, stepped past and loaded restores them. Under ZeRO-3
every weight is partitioned (persistence threshold 0), so the snapshot only holds the adapter if it gathers it.
Exits 1 when a check fails; prints one JSON line per variant and writes them all to --out.

    python bench/gpu_smoke.py --model .cache/gpu-smoke/model --out smoke.json            # on the GPU box
    python bench/gpu_smoke.py --model .cache/gpu-smoke/model --device cpu --layers 2 --hidden 64   # a CPU dry run
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from contract.chat_tokens import chat_token_ids  # noqa: E402
from rl_actors.batch import Sample  # noqa: E402
from rl_actors.config import AlgoConfig, LearnerConfig, ModelConfig  # noqa: E402
from rl_actors.learner import LearnerCore  # noqa: E402
from rl_actors.sequences import encode_completion, pairs_logprobs  # noqa: E402

SYSTEM = "You detect anomalies in system logs. Think in <think></think>, then answer normal or anomalous."
LOGS = [
    "RAS KERNEL INFO instruction cache parity error corrected",
    "RAS KERNEL FATAL data TLB error interrupt",
    "ciod: failed to read message prefix on control stream",
    "generating core.2275",
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106",
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "kernel: EXT3-fs error (device sda1): ext3_find_entry: reading directory",
    "sshd[1234]: Accepted publickey for admin from 10.0.0.1",
]
ANSWERS = ["normal", "anomalous", "anomalous", "anomalous", "normal", "normal", "anomalous", "normal"]


@dataclass(frozen=True)
class Variant:
    name: str
    zero_stage: int
    dtype: str
    gradient_checkpointing: bool

    @property
    def tolerance(self) -> float:
        """Largest |learner - reloaded| token log-prob accepted: bf16 kernels may differ in the last bits."""
        return 5e-2 if self.dtype == "bfloat16" else 1e-4


def random_base(arch: Path, out: Path, layers: int | None, hidden: int | None) -> Path:
    """A seeded random fp32 model of `arch`'s architecture (optionally shrunk), saved with its tokenizer; each variant
    loads it in its own dtype."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(arch)
    if layers:
        config.num_hidden_layers = layers
    if hidden:
        heads = max(1, hidden // config.head_dim) if getattr(config, "head_dim", None) else config.num_attention_heads
        config.hidden_size, config.intermediate_size = hidden, 4 * hidden
        config.num_attention_heads = config.num_key_value_heads = heads
        config.head_dim = hidden // heads
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(arch).save_pretrained(out)
    return out


def training_pairs(tokenizer) -> list[tuple[list[int], list[int]]]:
    """Chat prompts in the model's own template and tagged completions (the tags are several tokens each)."""
    pairs = []
    for log, answer in zip(LOGS, ANSWERS):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Log: {log}"}]
        completion = f"<think>The line reads: {log[:40]}.</think><answer>{answer}</answer>"
        pairs.append((chat_token_ids(tokenizer, messages), encode_completion(tokenizer, completion)))
    return pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mean_logprob(rows: list[list[float]]) -> float:
    return sum(sum(r) / len(r) for r in rows) / len(rows)


def reloaded_logprobs(base: Path, adapter: Path, dtype: str, device: str, pairs, pad_id: int) -> list[list[float]]:
    """The snapshot loaded as a user would: plain transformers + PEFT, no DeepSpeed."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype)).to(device)
    model = PeftModel.from_pretrained(model, adapter).eval()

    def forward(ids, mask, keep):
        extra = {} if keep is None else {"logits_to_keep": keep}
        return model(input_ids=ids, attention_mask=mask, **extra).logits

    with torch.no_grad():
        return pairs_logprobs(forward, pairs, pad_id, device, 1.0, 4)


def snapshot_tensors(snapshot) -> dict[str, torch.Tensor]:
    """The LoRA tensors of an adapter snapshot, as PEFT saved them."""
    from safetensors.torch import load

    return load(next(data for name, data in snapshot.files.items() if name.endswith(".safetensors")))


def max_gap(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for r, q in zip(a, b) for x, y in zip(r, q))


def checkpoint_round_trip(core: LearnerCore, samples: list[Sample], pairs, saved: list[list[float]]) -> dict:
    """Save a learner checkpoint (DeepSpeed's: LoRA weights or their ZeRO-3 partitions, optimizer), step again, load
    it: how far the extra step moved the log-probs, and how far the reloaded ones are from the saved weights'."""
    with tempfile.TemporaryDirectory() as tmp:
        core.save_checkpoint(tmp)
        core.grpo_step(samples)
        moved = max_gap(core.logprobs(pairs), saved)
        core.load_checkpoint(tmp)
        return {"moved": moved, "restored": max_gap(core.logprobs(pairs), saved)}


def run_variant(variant: Variant, base: Path, device: str) -> dict:
    """Two SFT steps, one GRPO step, snapshot and reload on one learner rank; the checks' figures and verdicts."""
    started = time.perf_counter()
    on_gpu = device == "cuda"
    learner_cfg = LearnerConfig(
        zero_stage=variant.zero_stage,
        dtype=variant.dtype,
        gradient_checkpointing=variant.gradient_checkpointing,
        num_gpus_per_worker=1 if on_gpu else 0,
        zero3_param_persistence_threshold=0,  # partition even the small LoRA weights: the snapshot must gather them
        micro_batch_size=4,
        logprob_micro_batch_size=4,
    )
    algo = AlgoConfig(kl_coef=0.02)
    core = LearnerCore(str(base), ModelConfig(path=str(base)), learner_cfg, algo, 8, 1e-3)
    core.init_engine("127.0.0.1", free_port())
    pairs = training_pairs(core.tokenizer)
    out: dict = {"variant": variant.name, "device": str(core.device)}
    out["load"] = dict(core.load_report)  # under ZeRO-3: loaded under zero.Init, each weight a partition
    if on_gpu:
        out["load"]["gpu_memory_after_load_gib"] = torch.cuda.memory_allocated() / 2**30
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()

    initial = snapshot_tensors(core.snapshot(0))  # before any forward: under ZeRO-3 nothing is gathered yet
    out["initial_snapshot"] = {"tensors": len(initial), "empty": sum(t.numel() == 0 for t in initial.values())}
    sft = [core.sft_step(pairs)["sft/loss"] for _ in range(2)]
    out["sft_losses"] = sft
    before = core.logprobs(pairs)
    advantages = [1.0 if answer == "anomalous" else -1.0 for answer in ANSWERS]
    samples = [
        Sample(i // 4, i % 4, i // 4, prompt, completion, before[i], advantage=advantages[i])
        for i, (prompt, completion) in enumerate(pairs)
    ]
    grpo = core.grpo_step(samples)
    out["grpo"] = {k: grpo[k] for k in ("actor/loss", "actor/kl", "actor/grad_norm") if k in grpo}
    after = core.logprobs(pairs)
    up = [i for i, a in enumerate(advantages) if a > 0]
    down = [i for i, a in enumerate(advantages) if a < 0]
    shift = {
        "positive": mean_logprob([after[i] for i in up]) - mean_logprob([before[i] for i in up]),
        "negative": mean_logprob([after[i] for i in down]) - mean_logprob([before[i] for i in down]),
    }
    out["grpo_logprob_shift"] = shift

    snapshot = core.snapshot(1)
    tensors = snapshot_tensors(snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        folder = snapshot.write(tmp)
        out["snapshot"] = {
            "tensors": len(tensors),
            "empty": sum(t.numel() == 0 for t in tensors.values()),
            "non_finite": sum(not bool(torch.isfinite(t.float()).all()) for t in tensors.values()),
            "lora_B_norm": float(sum(t.float().norm() for k, t in tensors.items() if "lora_B" in k)),
        }
        reloaded = reloaded_logprobs(base, folder, variant.dtype, device, pairs, core.tokenizer.pad_token_id)
    gap = max_gap(after, reloaded)
    out["reload_max_abs_logprob_diff"] = gap
    out["checkpoint"] = checkpoint_round_trip(core, samples, pairs, after)
    if on_gpu:
        out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    out["seconds"] = time.perf_counter() - started
    out["checks"] = {
        "sft_losses_finite": all(math.isfinite(x) for x in sft),
        "grpo_metrics_finite": all(math.isfinite(v) for v in out["grpo"].values()),
        "grpo_moves_toward_advantage": shift["positive"] > shift["negative"],
        "initial_snapshot_non_empty": len(initial) > 0 and out["initial_snapshot"]["empty"] == 0,
        "snapshot_non_empty_finite": out["snapshot"]["tensors"] > 0
        and out["snapshot"]["empty"] == 0
        and out["snapshot"]["non_finite"] == 0
        and out["snapshot"]["lora_B_norm"] > 0,  # LoRA B starts at zero: non-zero means the updates landed
        "reloaded_logprobs_match": gap <= variant.tolerance,
        "checkpoint_restores_weights": out["checkpoint"]["moved"] > 1e-3 and out["checkpoint"]["restored"] <= 1e-4,
        # ZeRO-3 loads the base partitioned (zero.Init); other stages load it whole
        "zero3_partitioned_load": out["load"]["partitioned_at_load"] == (variant.zero_stage == 3),
    }
    out["ok"] = all(out["checks"].values())
    del core
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Folder with config.json and a tokenizer.")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--layers", type=int, help="Shrink the architecture to this many layers (CPU dry runs).")
    parser.add_argument("--hidden", type=int, help="Shrink the hidden width (CPU dry runs).")
    parser.add_argument("--out", type=Path, help="Write the per-variant results here as JSON.")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    dtype = "bfloat16" if args.device == "cuda" else "float32"  # bf16 on CPU is ~37x slower here
    variants = [
        Variant(f"zero2-{dtype}-checkpointing", 2, dtype, True),
        Variant(f"zero3-{dtype}", 3, dtype, False),
    ]
    if args.device == "cuda":
        variants.append(Variant("zero2-float32", 2, "float32", False))  # tight reload tolerance
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = random_base(args.model, Path(tmp) / "base", args.layers, args.hidden)
        for variant in variants:
            result = run_variant(variant, base, args.device)
            print(json.dumps(result), flush=True)
            results.append(result)
    summary = {"torch": torch.__version__, "cuda": torch.version.cuda, "variants": results}
    if args.device == "cuda":
        summary["gpu"] = torch.cuda.get_device_name(0)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
    failed = [r["variant"] for r in results if not r["ok"]]
    print("gpu_smoke:", "FAILED " + ", ".join(failed) if failed else "all checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
