"""Learner actors: a DeepSpeed engine over a PEFT LoRA model, doing SFT and GRPO updates."""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ray
import torch

from reward_workers.worker import split_evenly
from rl_actors.adapters import AdapterSnapshot, lora_target_modules
from rl_actors.algos import batch_denominator, grpo_loss, truncated_is_weights
from rl_actors.config import AlgoConfig, LearnerConfig, ModelConfig
from rl_actors.sequences import align_to_mask, pad_pairs, token_logprobs, unpad

Pair = tuple[list[int], list[int]]  # (prompt_ids, completion_ids)
REFERENCE_ADAPTER = "reference"  # the frozen copy of the initial adapter, when it is the KL reference


class LearnerCore:
    """Pure core of one learner rank. Rank 0 owns adapter snapshots; all ranks step together."""

    def __init__(
        self,
        model_path: str,
        model_cfg: ModelConfig,
        learner_cfg: LearnerConfig,
        algo_cfg: AlgoConfig,
        sequences_per_step: int,
        learning_rate: float,
        init_adapter: str | None = None,
        rank: int = 0,
        world_size: int = 1,
        temperature: float = 1.0,
    ):
        from peft import LoraConfig, PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if learner_cfg.threads:
            torch.set_num_threads(learner_cfg.threads)  # Ray pins OMP_NUM_THREADS to the reserved CPUs
        self.cfg, self.algo, self.rank, self.world_size = learner_cfg, algo_cfg, rank, world_size
        self.sequences_per_step, self.learning_rate = sequences_per_step, learning_rate
        self.temperature = temperature  # the rollout's sampling temperature: GRPO logprobs are taken at it
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        dtype = torch.bfloat16 if learner_cfg.dtype == "bfloat16" else torch.float32
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        if init_adapter:
            self.model = PeftModel.from_pretrained(base, init_adapter, is_trainable=True)
        else:
            lora = LoraConfig(
                r=model_cfg.lora_rank,
                lora_alpha=model_cfg.lora_alpha,
                lora_dropout=model_cfg.lora_dropout,
                target_modules=model_cfg.target_modules or lora_target_modules(base),
                task_type="CAUSAL_LM",
            )
            self.model = get_peft_model(base, lora)
        self.reference_adapter = bool(init_adapter) and algo_cfg.kl_reference == "init_adapter"
        if self.reference_adapter:
            self.model.load_adapter(init_adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        self.trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        self.engine = None

    # --- distributed setup -------------------------------------------------------------------
    def address(self) -> tuple[str, int]:
        """This rank's node address and a free port (rank 0's becomes the rendezvous point)."""
        with socket.socket() as sock:
            sock.bind(("", 0))
            return ray.util.get_node_ip_address(), sock.getsockname()[1]

    def init_engine(self, master_addr: str, master_port: int) -> int:
        """Join the process group and build the DeepSpeed engine (torch AdamW as the client optimizer)."""
        import deepspeed

        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",
        )
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        per_rank = math.ceil(self.sequences_per_step / self.world_size)
        self.grad_accum = math.ceil(per_rank / self.cfg.micro_batch_size)
        ds_config = {
            "train_micro_batch_size_per_gpu": self.cfg.micro_batch_size,
            "gradient_accumulation_steps": self.grad_accum,
            "gradient_clipping": self.cfg.grad_clip,
            "zero_optimization": {"stage": self.cfg.zero_stage},
            "bf16": {"enabled": self.cfg.dtype == "bfloat16"},
            "steps_per_print": 1 << 30,
        }
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.0)
        self.engine, *_ = deepspeed.initialize(model=self.model, optimizer=optimizer, config=ds_config)
        return self.grad_accum

    # --- forward helpers ---------------------------------------------------------------------
    def _micro_batches(self, items: Sequence) -> list[Sequence]:
        """Exactly `grad_accum` micro-batches (DeepSpeed steps the optimizer at that boundary)."""
        return [items[start:end] for start, end in split_evenly(len(items), self.grad_accum)]

    def _logprobs(self, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
        logits = self.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return token_logprobs(logits, batch["input_ids"], temperature)

    @contextmanager
    def _as_reference(self) -> Iterator[None]:
        """Run the model as the KL reference: the frozen initial adapter, or the base with the adapter disabled."""
        module = self.engine.module
        if not self.reference_adapter:
            with module.disable_adapter():
                yield
            return
        module.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
        try:
            yield
        finally:
            module.set_adapter("default")
            # set_adapter marks the active adapter trainable: restore exactly what the optimizer owns.
            for name, param in module.named_parameters():
                param.requires_grad_(name in self.trainable)

    @torch.no_grad()
    def logprobs(self, pairs: list[Pair], reference: bool = False, temperature: float = 1.0) -> list[list[float]]:
        """Per-token completion logprobs under the policy, or under the KL reference, at `temperature`."""
        self.engine.eval()
        batch = pad_pairs(pairs, self.tokenizer.pad_token_id)
        if reference:
            with self._as_reference():
                values = self._logprobs(batch, temperature)
        else:
            values = self._logprobs(batch, temperature)
        return unpad(values, batch["completion_mask"])

    def _global_denominator(self, masks: list[torch.Tensor]) -> float:
        """The loss denominator of the whole step: tokens (or sequences) over every micro-batch of every rank."""
        local = torch.tensor(batch_denominator(masks, self.algo.loss_agg), dtype=torch.float64)
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(local)
        return float(local)

    # --- updates -----------------------------------------------------------------------------
    def sft_step(self, pairs: list[Pair]) -> dict[str, float]:
        """One optimizer step of completion-only cross-entropy on teacher completions."""
        started = time.perf_counter()
        self.engine.train()
        total, tokens = 0.0, 0.0
        for micro in self._micro_batches(pairs):
            if not micro:
                continue
            batch = pad_pairs(micro, self.tokenizer.pad_token_id)
            mask = batch["completion_mask"]
            nll = -self._logprobs(batch)
            loss = (nll * mask).sum() / mask.sum().clamp(min=1)
            self.engine.backward(loss)
            self.engine.step()
            total += float((nll.detach() * mask).sum())
            tokens += float(mask.sum())
        return {"sft/loss": total / max(tokens, 1.0), "time/learn": time.perf_counter() - started}

    def _grpo_batch(self, micro: list[dict]) -> dict[str, torch.Tensor]:
        """Pad one micro-batch and attach old-policy logprobs, advantages, reference logprobs, IS weights."""
        batch = pad_pairs([(s["prompt_ids"], s["completion_ids"]) for s in micro], self.tokenizer.pad_token_id)
        mask = batch["completion_mask"]
        rollout_logp = align_to_mask([s["logprobs"] for s in micro], mask)
        if self.algo.old_logprobs == "learner":
            with torch.no_grad():  # the policy before this update, as the learner computes it
                self.engine.eval()
                batch["old_logp"] = self._logprobs(batch, self.temperature)
            batch["rollout_gap"] = ((batch["old_logp"] - rollout_logp).abs() * mask).sum()
            if self.algo.tis_cap is not None:
                batch["is_weights"] = truncated_is_weights(batch["old_logp"], rollout_logp, self.algo.tis_cap)
        else:
            batch["old_logp"] = rollout_logp
        batch["advantages"] = torch.tensor([s["advantage"] for s in micro], dtype=torch.float32)
        if self.algo.kl_coef > 0:
            batch["ref_logp"] = self._reference(micro, batch)
        return batch

    def grpo_step(self, samples: list[dict]) -> dict[str, float]:
        """GRPO update on rollout samples {prompt_ids, completion_ids, logprobs, advantage[, ref_logprobs]}.

        Clipped (and dual-clipped) ratio against old-policy logprobs recomputed here before the update (or
        vLLM's), group advantages, k3 KL to the reference. The loss is the token-mean over the WHOLE step:
        every micro-batch divides by the step's token count over all ranks, and the factor
        grad_accum * world_size undoes DeepSpeed's averaging over accumulation steps and ranks.
        """
        started = time.perf_counter()
        batches = [self._grpo_batch(micro) for micro in self._micro_batches(samples) if micro]
        denominator = self._global_denominator([b["completion_mask"] for b in batches])
        scale = self.grad_accum * self.world_size
        self.engine.train()
        sums: dict[str, float] = {}
        for _ in range(self.algo.epochs_per_batch):
            for batch in batches:
                logp = self._logprobs(batch, self.temperature)
                loss, stats = grpo_loss(
                    logp,
                    batch["old_logp"],
                    batch.get("ref_logp"),
                    batch["advantages"],
                    batch["completion_mask"],
                    self.algo,
                    denominator=denominator,
                    is_weights=batch.get("is_weights"),
                )
                self.engine.backward(loss * scale)
                self.engine.step()
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
        epochs, count = self.algo.epochs_per_batch, max(len(batches) * self.algo.epochs_per_batch, 1)
        # The losses are shares of the step's loss (they add up); the diagnostics are per-micro-batch means.
        metrics = {f"actor/{k}": v / (epochs if k in ("loss", "pg_loss") else count) for k, v in sums.items()}
        if batches and "rollout_gap" in batches[0]:
            tokens = sum(float(b["completion_mask"].sum()) for b in batches)
            metrics["actor/rollout_logp_gap"] = sum(float(b["rollout_gap"]) for b in batches) / max(tokens, 1.0)
        grad_norm = self.engine.get_global_grad_norm()
        if grad_norm is not None:
            metrics["actor/grad_norm"] = float(grad_norm)
        metrics["time/learn"] = time.perf_counter() - started
        return metrics

    def _reference(self, micro: list[dict], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reference logprobs: the ones the trainer already computed, else a forward with the adapter disabled."""
        if all(s.get("ref_logprobs") is not None for s in micro):
            return align_to_mask([s["ref_logprobs"] for s in micro], batch["completion_mask"])
        with torch.no_grad(), self._as_reference():
            self.engine.eval()
            return self._logprobs(batch, self.temperature)

    def snapshot(self, version: int) -> AdapterSnapshot | None:
        """The current adapter as a versioned PEFT folder in memory (rank 0 only; others return None)."""
        if self.rank != 0:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            self.engine.module.save_pretrained(tmp, selected_adapters=["default"])  # never the frozen reference
            return AdapterSnapshot.from_dir(tmp, version)


LearnerWorker = ray.remote(LearnerCore)
