"""The learner rank's pure core: a DeepSpeed engine over a PEFT LoRA model, doing SFT and GRPO updates.

No Ray import here: the core runs wherever torch, DeepSpeed and PEFT do (`bench/gpu_smoke.py`); the actor shell
is `rl_actors.learner_worker`.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from contract.sharding import split_evenly
from rl_actors.adapters import AdapterSnapshot, lora_target_modules
from rl_actors.algos import batch_denominator, grpo_loss, truncated_is_weights
from rl_actors.batch import Sample
from rl_actors.config import AlgoConfig, LearnerConfig, ModelConfig
from rl_actors.sequences import (
    align_to_mask,
    batch_to,
    collate,
    masked_logprobs,
    pad_pairs,
    pairs_logprobs,
)

Pair = tuple[list[int], list[int]]  # (prompt_ids, completion_ids)
REFERENCE_ADAPTER = "reference"  # the frozen copy of the initial adapter, when it is the KL reference
SAMPLES_KEY = "learner/samples"  # how many samples a rank's grpo_step trained on
LEARNER_CHECKPOINT, CHECKPOINT_TAG = "learner", "state"  # <checkpoint>/learner/state/: DeepSpeed's files


def dropout_free(model: torch.nn.Module) -> bool:
    """True when train mode computes what eval mode does: no active dropout module, no attention dropout."""
    if getattr(getattr(model, "config", None), "attention_dropout", 0.0):
        return False
    return not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def plan_micro_steps(num_items: int, grad_accum: int) -> list[tuple[int, int]]:
    """Exactly `grad_accum` contiguous [start, end) slices of a rank's shard, in order; empty ones mean "dummy".

    Every rank runs this many forward/backward/`engine.step()` calls per optimizer step whatever its shard's size
    (DeepSpeed steps the optimizer, and ZeRO reduces gradients, at that boundary: a rank that skipped one would
    leave the others waiting in a collective). An empty slice becomes a zero-weight dummy micro-batch.
    """
    if grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
    return split_evenly(num_items, grad_accum)


def dist_backend(learner_cfg: LearnerConfig) -> str:
    """NCCL when the learner ranks reserve GPUs, else gloo: decided by the config, not by what a process sees."""
    return "nccl" if learner_cfg.num_gpus_per_worker > 0 else "gloo"


def rendezvous_store(master_addr: str, master_port: int, rank: int, world_size: int) -> torch.distributed.TCPStore:
    """The ranks' rendezvous store; rank 0 serves it on `master_addr` only. torch's TCPStore would listen on every
    interface (it takes no bind address, only a listening socket, which it then owns) and has no auth; on a local
    cluster `master_addr` is 127.0.0.1."""
    from datetime import timedelta

    timeout = timedelta(minutes=30)  # torch's default for a process group's store
    if rank != 0:
        return torch.distributed.TCPStore(master_addr, master_port, world_size, False, timeout)
    family = socket.AF_INET6 if ":" in master_addr else socket.AF_INET
    listening = socket.create_server((master_addr, master_port), family=family, backlog=128).detach()
    try:
        return torch.distributed.TCPStore(
            master_addr, master_port, world_size, True, timeout, wait_for_workers=False, master_listen_fd=listening
        )
    except BaseException:
        os.close(listening)
        raise


def deepspeed_config(learner_cfg: LearnerConfig, grad_accum: int) -> dict:
    """The DeepSpeed config of the learner engine."""
    zero = {"stage": learner_cfg.zero_stage}
    if learner_cfg.zero_stage == 3 and learner_cfg.zero3_param_persistence_threshold is not None:
        zero["stage3_param_persistence_threshold"] = learner_cfg.zero3_param_persistence_threshold
    return {
        "train_micro_batch_size_per_gpu": learner_cfg.micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": learner_cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": learner_cfg.dtype == "bfloat16"},
        "steps_per_print": 1 << 30,
    }


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in backward (non-reentrant, so the frozen embeddings need no input grads)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def partition_report(model: torch.nn.Module) -> dict[str, int | bool]:
    """Elements of the model's weights this process holds against the whole model's: under ZeRO-3's zero.Init each
    weight keeps only its partition (`ds_tensor`; `ds_numel` is the full size)."""
    full = local = 0
    partitioned = False
    for param in model.parameters():
        if hasattr(param, "ds_numel"):
            partitioned = True
            full += param.ds_numel
            local += param.ds_tensor.numel()
        else:
            full += param.numel()
            local += param.numel()
    return {"partitioned_at_load": partitioned, "local_elements": local, "full_elements": full}


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
        seed: int = 0,
    ):
        from transformers import AutoTokenizer

        if learner_cfg.threads:
            torch.set_num_threads(learner_cfg.threads)  # Ray pins OMP_NUM_THREADS to the reserved CPUs
        self.cfg, self.algo, self.rank, self.world_size = learner_cfg, algo_cfg, rank, world_size
        self.sequences_per_step, self.learning_rate = sequences_per_step, learning_rate
        self.temperature = temperature  # the rollout's sampling temperature: GRPO logprobs are taken at it
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._model_args = (model_path, model_cfg, init_adapter, seed)
        self.engine, self.model, self.load_report = None, None, {}
        if learner_cfg.zero_stage != 3:
            self._build_model()  # under ZeRO-3: in init_engine, partitioned as it loads (see there)

    def _build_model(self) -> None:
        """The base (under ZeRO-3 loaded straight into this rank's partitions) with the trainable LoRA adapter."""
        from peft import LoraConfig, PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM

        model_path, model_cfg, init_adapter, seed = self._model_args
        dtype = torch.bfloat16 if self.cfg.dtype == "bfloat16" else torch.float32
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        self.load_report = partition_report(base)
        if self.cfg.gradient_checkpointing:
            enable_gradient_checkpointing(base)
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
            torch.manual_seed(seed)  # a fresh LoRA's initial weights: the same on every rank and every run
            self.model = get_peft_model(base, lora)
        self.reference_adapter = bool(init_adapter) and self.algo.kl_reference == "init_adapter"
        if self.reference_adapter:
            self.model.load_adapter(init_adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        self.trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        self.dropout_free = dropout_free(self.model)

    # --- distributed setup -------------------------------------------------------------------
    def address(self) -> tuple[str, int]:
        """This rank's node address and a free port (rank 0's becomes the rendezvous point)."""
        import ray  # only inside the actor: the core itself runs without Ray

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
        if not torch.distributed.is_initialized():  # DeepSpeed then uses this process group as it is
            store = rendezvous_store(master_addr, master_port, self.rank, self.world_size)
            backend = dist_backend(self.cfg)
            torch.distributed.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size)
        deepspeed.init_distributed(dist_backend=dist_backend(self.cfg))
        per_rank = math.ceil(self.sequences_per_step / self.world_size)
        self.grad_accum = math.ceil(per_rank / self.cfg.micro_batch_size)
        config = deepspeed_config(self.cfg, self.grad_accum)
        if self.model is None:  # ZeRO-3: a base that does not fit one device is never whole on any rank
            from transformers.integrations import HfDeepSpeedConfig

            # While this object lives, from_pretrained builds the model under deepspeed.zero.Init: each layer is
            # partitioned across the ranks as it is created and loaded (needs the process group, hence here).
            self._zero3_load = HfDeepSpeedConfig(config)
            linear = torch.nn.functional.linear
            self._build_model()
            # zero.Init swaps in DeepSpeed's "memory-efficient" linear and leaves it installed after the load;
            # training forwards under it stalled (two gloo ranks, CPU): torch's own linear, as before zero.Init.
            torch.nn.functional.linear = linear
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.0)
        self.engine, *_ = deepspeed.initialize(model=self.model, optimizer=optimizer, config=config)
        return self.grad_accum

    # --- forward helpers ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the engine put the model: every batch goes there before its forward pass."""
        return self.engine.device

    def _micro_batches(self, items: Sequence) -> list[Sequence]:
        """Exactly `grad_accum` micro-batches, some possibly empty (see `plan_micro_steps`)."""
        return [items[start:end] for start, end in plan_micro_steps(len(items), self.grad_accum)]

    def _forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits at the `keep` positions only (the LM head skips prompt positions), or everywhere."""
        extra = {} if keep is None else {"logits_to_keep": keep}
        return self.engine(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    def _agreed_forwards(self, planned: int) -> int:
        """The most no-grad forwards any rank plans for the coming pass, agreed before it starts.

        Under ZeRO-3 with several ranks every forward is itself a collective (each layer gathers its shards), so a
        rank with a smaller or empty shard pads with `_dummy_forwards` to the same count, in the same adapter mode.
        Elsewhere each rank simply runs its own.
        """
        if self.cfg.zero_stage != 3 or self.world_size == 1:
            return planned
        import torch.distributed as dist

        most = torch.tensor(planned, device=self.device)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        return int(most)

    @torch.no_grad()
    def _dummy_forwards(self, count: int) -> None:
        pad = self.tokenizer.pad_token_id
        dummy = collate([([pad], [pad])], pad, self.device)
        for _ in range(count):
            self._forward(dummy["input_ids"], dummy["attention_mask"])

    def _nograd_forwards(self, rows: Sequence[int]) -> int:
        """Forwards of no-grad passes over batches of these sizes (`logprob_micro_batch_size` rows each)."""
        return sum(math.ceil(n / self.cfg.logprob_micro_batch_size) for n in rows)

    def _logprobs(self, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
        """Completion-token logprobs of one training micro-batch (with grad), 0 off the completion mask."""
        return masked_logprobs(self._forward, batch, temperature)

    def _nograd_logprobs(self, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
        """A no-grad log-prob pass (old policy, reference), `logprob_micro_batch_size` sequences per forward."""
        return masked_logprobs(self._forward, batch, temperature, self.cfg.logprob_micro_batch_size)

    def _dummy_micro_step(self) -> None:
        """A zero-weight forward/backward/step for a rank with nothing left in this slot (keeps ranks in lockstep)."""
        pad = self.tokenizer.pad_token_id
        batch = collate([([pad], [pad])], pad, self.device)
        self.engine.backward(self._logprobs(batch, self.temperature).sum() * 0.0)
        self.engine.step()

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
        """Per-token completion logprobs under the policy, or under the KL reference, at `temperature`.

        Every rank calls it together (a shard each, maybe empty): under ZeRO-3 the forwards are collectives.
        """
        self.engine.eval()
        planned = self._nograd_forwards([len(pairs)])
        agreed = self._agreed_forwards(planned)

        def run() -> list[list[float]]:
            pad, size = self.tokenizer.pad_token_id, self.cfg.logprob_micro_batch_size
            out = pairs_logprobs(self._forward, pairs, pad, self.device, temperature, size)
            self._dummy_forwards(agreed - planned)
            return out

        if reference:
            with self._as_reference():
                return run()
        return run()

    def _global_denominator(self, masks: list[torch.Tensor]) -> float:
        """The loss denominator of the whole step: tokens (or sequences) over every micro-batch of every rank."""
        # On the engine's device: NCCL reduces only CUDA tensors.
        local = torch.tensor(batch_denominator(masks, self.algo.loss_agg), dtype=torch.float64, device=self.device)
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
                self._dummy_micro_step()
                continue
            batch = collate(micro, self.tokenizer.pad_token_id, self.device)
            mask = batch["completion_mask"]
            nll = -self._logprobs(batch)
            loss = (nll * mask).sum() / mask.sum().clamp(min=1)
            self.engine.backward(loss)
            self.engine.step()
            total += float((nll.detach() * mask).sum())
            tokens += float(mask.sum())
        metrics = {"sft/loss": total / tokens} if tokens else {}  # an empty shard has no loss to report
        return metrics | {"time/learn": time.perf_counter() - started}

    def _grpo_batches(self, micros: Sequence[Sequence[Sample]]) -> list[dict[str, torch.Tensor] | None]:
        """The step's micro-batches (None for an empty slot) with old-policy and reference logprobs attached.

        The no-grad passes run phase by phase, all old-policy passes then all reference passes, each phase a count
        of forwards agreed by the ranks (`_agreed_forwards`): ZeRO-3 ranks then gather in step.
        """
        slots = [self._grpo_batch(micro) if micro else None for micro in micros]
        batches = [b for b in slots if b is not None]
        if self.algo.old_logprobs == "rollout":
            for batch in batches:
                batch["old_logp"] = batch.pop("rollout_logp")
        elif not self.old_is_current:
            planned = self._nograd_forwards([len(b["input_ids"]) for b in batches])
            agreed = self._agreed_forwards(planned)
            with torch.no_grad():  # the policy before this update, as the learner computes it
                self.engine.eval()
                for batch in batches:
                    self._attach_old_policy(batch, self._nograd_logprobs(batch, self.temperature))
                self._dummy_forwards(agreed - planned)
        # else: the update's own first forward is the old policy (`old_is_current`); attached in `grpo_step`.
        if self.algo.kl_coef > 0:  # reference logprobs the trainer did not send: a no-grad pass as the KL reference
            missing = [b for b in batches if "ref_logp" not in b]
            planned = self._nograd_forwards([len(b["input_ids"]) for b in missing])
            agreed = self._agreed_forwards(planned)
            if agreed:
                with torch.no_grad(), self._as_reference():
                    self.engine.eval()
                    for batch in missing:
                        batch["ref_logp"] = self._nograd_logprobs(batch, self.temperature)
                    self._dummy_forwards(agreed - planned)
        return slots

    def _grpo_batch(self, micro: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """Pad one micro-batch with its advantages, rollout logprobs and the trainer's reference logprobs."""
        unscored = [(s.group_id, s.sample_index) for s in micro if s.advantage is None]
        if unscored:
            raise ValueError(f"samples without an advantage (group, sample): {unscored[:5]}")
        batch = pad_pairs([(s.prompt_ids, s.completion_ids) for s in micro], self.tokenizer.pad_token_id)
        mask = batch["completion_mask"]
        batch["rollout_logp"] = align_to_mask([s.rollout_logprobs for s in micro], mask)
        batch["advantages"] = torch.tensor([s.advantage for s in micro], dtype=torch.float32)
        if self.algo.kl_coef > 0 and all(s.ref_logprobs is not None for s in micro):  # the trainer's
            batch["ref_logp"] = align_to_mask([s.ref_logprobs for s in micro], mask)
        return batch_to(batch, self.device)  # built on the CPU, used on the engine's device

    @property
    def old_is_current(self) -> bool:
        """Learner old log-probs without their own pass: one pass over the batch, no dropout, so the update's first
        forward computes exactly the policy before the update (all micro-batches precede the one optimizer step)."""
        return self.algo.old_logprobs == "learner" and self.algo.epochs_per_batch == 1 and self.dropout_free

    def _attach_old_policy(self, batch: dict[str, torch.Tensor], old_logp: torch.Tensor) -> None:
        """Old-policy log-probs, their gap to vLLM's (a metric), and truncated IS weights when configured."""
        rollout_logp = batch.pop("rollout_logp")
        batch["old_logp"] = old_logp
        batch["rollout_gap"] = ((old_logp - rollout_logp).abs() * batch["completion_mask"]).sum()
        if self.algo.tis_cap is not None:
            batch["is_weights"] = truncated_is_weights(old_logp, rollout_logp, self.algo.tis_cap)

    def grpo_step(self, samples: Sequence[Sample]) -> dict[str, float]:
        """GRPO update on this rank's shard of the step's rollout samples (with advantages, maybe reference logprobs).

        Clipped (and dual-clipped) ratio against old-policy logprobs recomputed here before the update (or
        vLLM's), group advantages, k3 KL to the reference. The loss is the token-mean over the WHOLE step:
        every micro-batch divides by the step's token count over all ranks, and the factor
        grad_accum * world_size undoes DeepSpeed's averaging over accumulation steps and ranks.
        """
        started = time.perf_counter()
        # None marks an empty slot of this rank's shard: a dummy micro-step keeps every rank's step count equal.
        slots = self._grpo_batches(self._micro_batches(samples))
        batches = [b for b in slots if b is not None]
        denominator = self._global_denominator([b["completion_mask"] for b in batches])
        scale = self.grad_accum * self.world_size
        self.engine.train()
        sums: dict[str, float] = {}
        for _ in range(self.algo.epochs_per_batch):
            for batch in slots:
                if batch is None:
                    self._dummy_micro_step()
                    continue
                logp = self._logprobs(batch, self.temperature)
                if "old_logp" not in batch:  # `old_is_current`: this forward is the policy before the update
                    self._attach_old_policy(batch, logp.detach())
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
        metrics[SAMPLES_KEY] = float(len(samples))  # summed over ranks by the driver, not averaged
        metrics["time/learn"] = time.perf_counter() - started
        return metrics

    # --- checkpoints (every rank: ZeRO partitions the optimizer state) ------------------------------
    def save_checkpoint(self, folder: str) -> None:
        """The trainable (LoRA) weights, optimizer and LR-scheduler state into `folder`/learner (DeepSpeed layout)."""
        self.engine.save_checkpoint(
            str(Path(folder) / LEARNER_CHECKPOINT), tag=CHECKPOINT_TAG, exclude_frozen_parameters=True
        )

    def load_checkpoint(self, folder: str) -> None:
        """Continue from `save_checkpoint`'s files: frozen weights stay as built (base, KL reference adapter)."""
        path, _ = self.engine.load_checkpoint(
            str(Path(folder) / LEARNER_CHECKPOINT), tag=CHECKPOINT_TAG, load_module_strict=False
        )
        if path is None:
            raise FileNotFoundError(f"{folder}: no learner checkpoint in it")

    def snapshot(self, version: int) -> AdapterSnapshot | None:
        """The current adapter as a versioned PEFT folder in memory (rank 0's; others return None).

        Every rank calls it: under ZeRO-3 each holds a shard of every LoRA weight, gathered here first.
        """
        with self._gathered_trainable():
            if self.rank != 0:
                return None
            with tempfile.TemporaryDirectory() as tmp:
                self.engine.module.save_pretrained(tmp, selected_adapters=["default"])  # never the frozen reference
                return AdapterSnapshot.from_dir(tmp, version)

    @contextmanager
    def _gathered_trainable(self) -> Iterator[None]:
        """The full LoRA weights on every rank for the block (a collective under ZeRO-3, nothing otherwise)."""
        if self.cfg.zero_stage != 3:
            yield
            return
        import deepspeed

        params = [p for p in self.engine.module.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            yield
