"""The single controller: SFT warm start and the GRPO loop, each step a call on an actor group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

from contract.adapter_store import adapter_versions, read_latest, write_latest
from contract.adapter_store import adapters_dir as run_adapters_dir
from contract.chat_tokens import chat_token_ids
from pipelines.config import DataConfig
from pipelines.prompts.store import row_labels
from pipelines.prompts.teacher import fast_mode_draws, sft_example
from reward_workers.config import RewardConfig
from reward_workers.registry import needs_ref_logprobs
from reward_workers.worker import score_columns_with_pool
from rl_actors.actor_group import ActorGroup, Pending, make_placement
from rl_actors.adapters import AdapterSnapshot, prune_adapter_versions
from rl_actors.batch import group_order, grouped_advantages_of
from rl_actors.checkpoint import (
    STATE_FILE,
    TrainerState,
    capture_rng,
    checkpoint_dir,
    checkpoint_due,
    prune_checkpoints,
    read_trainer_state,
    restore_rng,
    write_trainer_state,
)
from rl_actors.columns import VERDICTS, Chunks, RolloutMeta, StepBatch, StepView, learner_shards
from rl_actors.config import AlgoConfig, LearnerConfig, ModelConfig, RolloutConfig, SFTConfig, TrainConfig
from rl_actors.control import start_control
from rl_actors.learner import SAMPLES_KEY
from rl_actors.learner_worker import LearnerWorker
from rl_actors.metrics import MetricsLogger, mean_over_ranks, timed
from rl_actors.prompt_source import GroupBatch, PromptSource, training_view
from rl_actors.reward_actor import RewardWorker
from rl_actors.rollout import RolloutWorker
from rl_actors.sampling import PromptSampler
from rl_actors.sequences import encode_completion


class RLSettings(Protocol):
    """The config sections the trainer reads (cluster's LogrlConfig has them all)."""

    model: ModelConfig
    sft: SFTConfig
    rollout: RolloutConfig
    learner: LearnerConfig
    algo: AlgoConfig
    reward: RewardConfig
    train: TrainConfig
    data: DataConfig  # its `format` picks the task prompt (template sets have their own)


RUN_SECTIONS = ("model", "sft", "rollout", "learner", "algo", "reward", "train", "data")  # logged as MLflow params


def metrics_logger(cfg: RLSettings, stage: str) -> MetricsLogger:
    """The stage's logger; with `train.mlflow` it also logs into the output folder's MLflow run, config as params."""
    run = None
    if cfg.train.mlflow:
        from rl_actors.tracking import MlflowRun, flat_params

        run = MlflowRun.of_training(cfg.train)
        run.log_params(flat_params({name: getattr(cfg, name).model_dump(mode="json") for name in RUN_SECTIONS}))
    return MetricsLogger(cfg.train.output_dir, stage, run)


def adapters_dir(train_cfg: TrainConfig) -> Path:
    return run_adapters_dir(train_cfg.output_dir)


def checkpoints_dir(train_cfg: TrainConfig) -> Path:
    return Path(train_cfg.output_dir) / "checkpoints"


def protected_versions(train_cfg: TrainConfig, init_adapter: str | None) -> set[int]:
    """Adapter versions of the run folder never pruned: v0 (SFT/initial) and the one GRPO started from, if it is
    one of them (the KL reference with `kl_reference: init_adapter`, and what a restarted run reloads)."""
    protected = {0}
    if init_adapter:
        start = Path(init_adapter).resolve()
        protected |= {v for v, path in adapter_versions(adapters_dir(train_cfg)).items() if path.resolve() == start}
    return protected


def publish_adapter(
    snapshot: AdapterSnapshot, train_cfg: TrainConfig, stage: str, protected: set[int] = frozenset({0})
) -> Path:
    """Write the adapter folder, point `latest_adapter.json` at it (serving reads that file), and prune old
    versions to `train.keep_adapters` (never the `protected` ones nor this one)."""
    path = snapshot.write(adapters_dir(train_cfg)).resolve()
    write_latest(train_cfg.output_dir, snapshot.version, path, stage)
    prune_adapter_versions(adapters_dir(train_cfg), train_cfg.keep_adapters, {*protected, snapshot.version})
    return path


def make_learners(
    cfg: RLSettings,
    sequences_per_step: int,
    learning_rate: float,
    init_adapter: str | None,
    shared: PlacementGroup | None = None,
) -> ActorGroup:
    """Learner ranks over one placement group (their own, or `shared` with colocated rollout engines), joined into
    one DeepSpeed process group."""
    n = cfg.learner.num_workers
    group = ActorGroup(
        LearnerWorker,
        n,
        num_cpus=cfg.learner.num_cpus_per_worker,
        num_gpus=cfg.learner.num_gpus_per_worker,
        strategy=cfg.learner.placement_strategy,
        name="learner",
        shared=shared,
        placement_timeout_s=cfg.train.placement_timeout_s,
        kwargs_for_rank=lambda rank: dict(
            model_path=cfg.model.path,
            model_cfg=cfg.model,
            learner_cfg=cfg.learner,
            algo_cfg=cfg.algo,
            sequences_per_step=sequences_per_step,
            learning_rate=learning_rate,
            init_adapter=init_adapter,
            rank=rank,
            world_size=n,
            temperature=cfg.rollout.temperature,
            seed=cfg.train.seed,
        ),
    )
    master_addr, master_port = ray.get(group.workers[0].address.remote())
    group.call("init_engine", master_addr, master_port)
    return group


def make_rollouts(cfg: RLSettings, shared: PlacementGroup | None = None, prompts=None) -> ActorGroup:
    """The vLLM rollout engines, over their own placement group (`rollout.placement_strategy`) or `shared` bundles;
    `prompts`: the run's `PromptSource` (an object ref: put once, fetched by each engine)."""
    return ActorGroup(
        RolloutWorker,
        cfg.rollout.num_workers,
        num_cpus=cfg.rollout.num_cpus_per_worker,
        num_gpus=cfg.rollout.num_gpus_per_worker,
        strategy=cfg.rollout.placement_strategy,
        name="rollout",
        shared=shared,
        placement_timeout_s=cfg.train.placement_timeout_s,
        kwargs_for_rank=lambda rank: dict(
            model_path=cfg.model.path,
            model_cfg=cfg.model,
            rollout_cfg=cfg.rollout,
            seed=cfg.train.seed + rank,
            keep_adapters=cfg.train.keep_adapters,
            prompts=prompts,
        ),
    )


def make_rewards(cfg: RLSettings) -> ActorGroup:
    """The reward actors, over their own placement group (`reward.placement_strategy`)."""
    return ActorGroup(
        RewardWorker,
        cfg.reward.num_workers,
        num_cpus=cfg.reward.num_cpus_per_worker,
        strategy=cfg.reward.placement_strategy,
        name="reward",
        placement_timeout_s=cfg.train.placement_timeout_s,
        kwargs_for_rank=lambda rank: dict(cfg=cfg.reward),
    )


def run_sft(cfg: RLSettings, rows: Sequence[dict]) -> Path:
    """LoRA SFT on teacher completions through the DeepSpeed learner; publishes adapter v0."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    fast = fast_mode_draws(len(rows), cfg.sft.fast_mode_fraction, cfg.train.seed)

    def pair(index: int, key: str) -> tuple[list[int], list[int]]:  # tokenised when drawn: rows may be lazy
        view = training_view(rows[index], key, cfg.data.format, cfg.train.augment, cfg.train.seed)
        example = sft_example(view, fast[index], cfg.data.format)
        return chat_token_ids(tokenizer, example["messages"]), encode_completion(tokenizer, example["completion"])

    learners = make_learners(cfg, cfg.sft.batch_size, cfg.sft.learning_rate, init_adapter=None)
    logger = metrics_logger(cfg, "sft")
    sampler = PromptSampler(row_labels(rows), cfg.train.seed, cfg.sft.anomalous_share)
    try:
        for step in range(cfg.sft.steps):
            drawn = sampler.next(min(cfg.sft.batch_size, len(rows)))
            batch = [pair(i, f"sft:{step}:{j}") for j, i in enumerate(drawn)]
            results = learners.call_sharded("sft_step", batch)
            logger.log(step, mean_over_ranks(results))
        snapshot = learners.call("snapshot", 0)[0]  # every rank: under ZeRO-3 they gather the LoRA weights
        path = publish_adapter(snapshot, cfg.train, "sft")
        logger.log_artifacts(path, f"adapter/{path.name}")
        return path
    finally:
        logger.close()
        learners.shutdown()


@dataclass
class Rollout:
    """One step's rollout: started on the engines (`pending`), then its whole batch once `finish_rollout` ran."""

    step: int
    groups: GroupBatch
    pending: Pending
    sampler_state: dict  # the prompt sampler before this rollout drew its prompts (what a checkpoint saves)
    batch: StepBatch | None = None  # metadata here, the samples' columns in the object store


class GRPOTrainer:
    """Owns the loop: generate -> score -> advantages -> update -> sync; the actors only expose methods."""

    def __init__(
        self, cfg: RLSettings, rows: Sequence[dict], init_adapter: str | None, resume: str | Path | None = None
    ):
        """`init_adapter` is the adapter GRPO started from (also after a resume: it may be the KL reference);
        `resume` a complete checkpoint folder to continue from."""
        self.cfg, self.rows = cfg, rows
        # The engines build each group's prompt from the rows (the driver sends group ids and row indices only);
        # the driver's own copy of the source is for sync-check probes.
        self.source = PromptSource.of(cfg, rows)
        labels = row_labels(rows)
        self.label_codes = np.array([VERDICTS.get(label, -2) for label in labels], dtype=np.int8)
        self.sampler = PromptSampler(labels, cfg.train.seed, cfg.train.anomalous_share)
        group_size = cfg.rollout.group_size
        self.colocated = None  # rollout engine i in learner rank i's bundle: one placement group for both
        if cfg.rollout.colocate_with_learner:
            roles = [(r.num_cpus_per_worker, r.num_gpus_per_worker) for r in (cfg.learner, cfg.rollout)]
            self.colocated = make_placement(
                roles, cfg.learner.num_workers, cfg.learner.placement_strategy, cfg.train.placement_timeout_s, "learner"
            )
        self.learner = make_learners(
            cfg, cfg.train.prompts_per_step * group_size, cfg.learner.learning_rate, init_adapter, self.colocated
        )
        self.rollout = make_rollouts(cfg, self.colocated, prompts=ray.put(self.source))
        self.reward = make_rewards(cfg)
        self.control = start_control(cfg.train.output_dir, cfg.rollout.num_workers)  # `logrl scale --rollout N`
        self.probe: tuple[list[int], list[int]] | None = None  # a (prompt, completion) for sync checks
        self.logger = metrics_logger(cfg, "grpo")
        self.protected = protected_versions(cfg.train, init_adapter)
        self.version, self.start_step = 0, 0
        self.ahead: Rollout | None = None  # the next step's rollout, started early (train.overlap_rollout)
        if resume is None:
            self.sync_adapter(0)  # rollouts start from the initial (e.g. SFT) adapter
        else:
            self.restore(Path(resume))

    # --- the five calls ----------------------------------------------------------------------
    def step(self, step: int) -> dict[str, float]:
        """One GRPO step; returns its metrics. With `train.overlap_rollout` the next step's rollout is started as soon
        as this step's batch is in, and runs while this step scores and learns."""
        metrics: dict[str, float] = self.apply_scale()  # engines added or removed since the last step
        group_size = self.cfg.rollout.group_size
        rollout = self.ahead if self.ahead is not None and self.ahead.step == step else self.start_rollout(step)
        self.ahead = None
        metrics["prompts"] = rollout.groups.prompt_index.tolist()  # JSONL only: which batch each step trained on
        with timed(metrics, "time/rollout"):
            batch = self.finish_rollout(rollout)  # metadata; the samples stay in the object store (rl_actors.columns)
        if self.cfg.train.overlap_rollout and step + 1 < self.cfg.train.steps:
            self.ahead = self.start_rollout(step + 1)  # sampled with the current adapter while this step learns
        if self.cfg.rollout.sleeps:  # colocated: the engines free the GPU for the reference pass and the update
            with timed(metrics, "time/rollout_sleep"):
                self.rollout.call("sleep", on_replace=self.load_current_adapter)
        view = self.reference_logprobs(batch, metrics)
        with timed(metrics, "time/reward"):  # each reward actor fetches its shard's samples; scores come back as arrays
            scores, reward_timings = score_columns_with_pool(
                self.reward.workers, view, self.cfg.reward.timeout_s, replace=self.reward.replace
            )
        meta = batch.meta
        advantages = grouped_advantages_of(
            meta.group_id, meta.sample_index, scores["total"], self.cfg.algo.advantage, group_size
        )
        with timed(metrics, "time/learn"):
            learner_stats = self.learner.call_sharded("grpo_step", view.with_advantages(advantages))
        if self.ahead is not None:
            with timed(metrics, "time/rollout_ahead_wait"):  # what the overlap did not hide
                self.finish_rollout(self.ahead)
        trained = self.version  # the learner's adapter version this step's update started from
        if self.cfg.rollout.sleeps:
            with timed(metrics, "time/rollout_wake"):
                self.rollout.call("wake_up", on_replace=self.load_current_adapter)
        with timed(metrics, "time/sync"):
            self.sync_adapter(step + 1)
        metrics |= self.describe(meta, scores, learner_stats, reward_timings, trained)
        self.probe = batch.meta.probe
        metrics["sync/max_abs_logprob_diff"] = self.sync_check(self.probe)
        metrics["rollout/engines"] = float(len(self.rollout))
        return metrics

    def apply_scale(self) -> dict[str, float]:
        """Run as many rollout engines as `logrl scale` asked for. A new engine loads the current adapter and is
        sync-checked against the learner before it samples; a removed one finishes the batch it holds first."""
        target, current = ray.get(self.control.rollout_target.remote()), len(self.rollout)
        if target == current:
            return {}
        if self.colocated is not None:
            print(f"[rollout] scale to {target} refused: colocated engines share the learner's bundles", flush=True)
            ray.get(self.control.applied.remote(current))
            return {}
        out: dict[str, float] = {}
        if target > current:
            for worker in self.rollout.grow(target - current):
                self.load_current_adapter(worker)
                diff = self.sync_check(self.probe or self.fallback_probe(), engines=[worker])
                if not diff < float("inf"):
                    raise RuntimeError(f"a new rollout engine disagrees with the learner: max |logprob diff| {diff}")
                out["rollout/new_engine_sync_diff"] = max(out.get("rollout/new_engine_sync_diff", 0.0), diff)
        else:
            if self.ahead is not None:
                self.finish_rollout(self.ahead)  # the engines to stop hold part of it: collect it first
            self.rollout.shrink(current - target)
        ray.get(self.control.applied.remote(len(self.rollout)))
        print(f"[rollout] {current} -> {len(self.rollout)} engines", flush=True)
        return out

    def fallback_probe(self) -> tuple[list[int], list[int]]:
        """A (prompt, completion) pair before any rollout: the first prompt, its last tokens as the completion."""
        prompt = self.source.prompt_ids(self.rows[0]["prompt"])
        return prompt, prompt[-8:]

    def start_rollout(self, step: int) -> Rollout:
        """Draw the step's prompts and start sampling them on the rollout engines (returns at once)."""
        sampler_state = self.sampler.state_dict()
        groups = self.prompt_groups(step)
        pending = self.rollout.start_sharded("generate_columns", groups, seed=self.cfg.train.seed + step)
        return Rollout(step, groups, pending, sampler_state)

    def finish_rollout(self, rollout: Rollout) -> StepBatch:
        """The started rollout's metadata, every group whole (else a named error), with references to its samples;
        an engine that died is replaced with the adapter the others sample with, and its shard sampled again."""
        if rollout.batch is None:
            results = self.rollout.wait(rollout.pending, on_replace=self.load_current_adapter)
            batch = StepBatch.of(results)
            meta = batch.meta
            group_order(meta.group_id, meta.sample_index, self.cfg.rollout.group_size, rollout.groups.group_id)
            rollout.batch = batch
        return rollout.batch

    def fit(self) -> dict:
        """Run the steps left of `train.steps` (all of them, unless resumed), checkpointing every
        `train.checkpoint_every`; returns the last step's metrics and where things were written."""
        last: dict = {}
        train = self.cfg.train
        for step in range(self.start_step, train.steps):
            last = self.step(step)
            self.logger.log(step, last)
            if checkpoint_due(step + 1, train.checkpoint_every, train.steps):
                self.checkpoint(step + 1)
        adapter = read_latest(train.output_dir)
        self.logger.log_artifacts(adapter["path"], f"adapter/{Path(adapter['path']).name}")
        return {"metrics": last, "adapter": adapter, "log": str(self.logger.dir)}

    # --- checkpoints -------------------------------------------------------------------------
    def checkpoint(self, steps_done: int) -> Path:
        """Learner state from every rank, then the driver's state last (its file marks the checkpoint complete)."""
        folder = checkpoint_dir(checkpoints_dir(self.cfg.train), steps_done)
        (folder / STATE_FILE).unlink(missing_ok=True)  # re-saving a step: incomplete until written again
        self.learner.call("save_checkpoint", str(folder))
        # A rollout started ahead is not saved: the resumed run draws its prompts again and samples them on-policy.
        sampler = self.ahead.sampler_state if self.ahead is not None else self.sampler.state_dict()
        state = TrainerState(steps_done, self.version, sampler, capture_rng())
        write_trainer_state(folder, state)
        prune_checkpoints(checkpoints_dir(self.cfg.train), self.cfg.train.keep_checkpoints)
        print(f"[grpo] checkpoint {folder}", flush=True)
        return folder

    def restore(self, folder: Path) -> None:
        """Continue from a checkpoint: learner weights + optimizer, sampler cursor, RNG; its adapter to the engines."""
        state = read_trainer_state(folder)
        self.learner.call("load_checkpoint", str(folder))
        self.sampler.load_state_dict(state.sampler)
        restore_rng(state.rng)
        self.start_step = state.step
        self.logger.drop_from(state.step)  # a killed run may have logged steps past its last checkpoint
        self.sync_adapter(state.adapter_version)
        print(f"[grpo] resumed from {folder}: {state.step} steps done, adapter v{state.adapter_version}", flush=True)

    # --- pieces ------------------------------------------------------------------------------
    def prompt_groups(self, step: int) -> GroupBatch:
        """The step's prompts as row indices, each a group with an id unique over the run (a prompt drawn twice: two
        groups); the engines build the prompts."""
        per_step = self.cfg.train.prompts_per_step
        return GroupBatch.of(step * per_step, self.sampler.next(per_step))

    def reference_logprobs(self, batch: StepBatch, metrics: dict) -> StepView:
        """A view of the batch that also carries its completion logprobs under the KL reference at the sampling
        temperature, when KL or a reward needs them: computed by the learner ranks, left in the object store."""
        if self.cfg.algo.kl_coef == 0 and not needs_ref_logprobs(self.cfg.reward.weights):
            return batch.view
        temperature = self.cfg.rollout.temperature
        with timed(metrics, "time/reference"):
            pending = self.learner.start_sharded("reference_columns", batch.view, temperature=temperature)
            refs = [ref for _, ref in self.learner.wait(pending)]  # each rank's shard, as `call_sharded` cuts it
        return batch.view.with_reference(Chunks(tuple(refs), tuple(learner_shards(len(batch), len(self.learner)))))

    def sync_adapter(self, version: int) -> None:
        """Publish the learner's adapter as `version` and load it into every rollout engine."""
        # The engines fetch the snapshot from the learner's object store; the driver only reads it to publish.
        # Every rank takes part (under ZeRO-3 they gather the LoRA weights); rank 0's is the snapshot.
        snapshots = [worker.snapshot.remote(version) for worker in self.learner.workers]
        self.snapshot_ref = snapshots[0]
        loading = self.rollout.call_async("load_adapter", self.snapshot_ref)
        publish_adapter(ray.get(self.snapshot_ref), self.cfg.train, "grpo" if version else "init", self.protected)
        ray.get(snapshots[1:])
        self.rollout.wait(loading, on_replace=self.load_current_adapter)
        self.version = version

    def load_current_adapter(self, worker) -> None:
        """Ready a replacement rollout engine: the adapter the others hold."""
        ray.get(worker.load_adapter.remote(self.snapshot_ref))

    def sync_check(self, probe: tuple[list[int], list[int]], engines: list | None = None) -> float:
        """Largest |learner - rollout| logprob on one (prompt, completion) under the freshly synced adapter, over
        every rollout engine (each loaded the snapshot itself), or over the given `engines`."""
        pair = [probe]
        learner = self.learner.call("logprobs", pair)[0][0]  # every rank runs it: ZeRO-3 forwards are collectives
        if engines is None:
            engines = [scored[0] for scored in self.rollout.call("score", pair, on_replace=self.load_current_adapter)]
        else:
            engines = [scored[0] for scored in ray.get([engine.score.remote(pair) for engine in engines])]
        return max((abs(a - b) for rollout in engines for a, b in zip(learner, rollout)), default=0.0)

    def describe(
        self, meta: RolloutMeta, scores: dict[str, np.ndarray], learner_stats, reward_timings, trained: int
    ) -> dict[str, float]:
        """Reward by component, answer accuracy, lengths, learner stats averaged over ranks, how far the sampling
        adapter was behind the `trained` version: array means, nothing per sample in Python."""
        out = {f"reward/{k}": float(v.mean()) for k, v in scores.items()}
        out["rollout/well_formed"] = float(meta.well_formed.mean())
        out["rollout/accuracy"] = float((meta.verdict == self.label_codes[meta.prompt_index]).mean())
        out["rollout/completion_tokens"] = float(meta.completion_tokens.mean())
        out["rollout/truncated"] = float(meta.truncated.mean())
        out |= mean_over_ranks([{k: v for k, v in s.items() if k != SAMPLES_KEY} for s in learner_stats])
        out[SAMPLES_KEY] = sum(s.get(SAMPLES_KEY, 0.0) for s in learner_stats)  # every sample, on exactly one rank
        out |= {f"time/reward_{k}": v for k, v in reward_timings.items() if k != "retries"}
        if meta.policy_version is not None:  # learner versions the sampling adapter was behind: 0, or 1 overlapped
            out["rollout/policy_lag"] = float(trained - meta.policy_version)
        out["adapter/version"] = self.version
        out["faults/replaced_actors"] = float(self.rollout.replaced + self.reward.replaced)  # over the run
        return out

    def shutdown(self) -> None:
        self.logger.close()
        for group in (self.rollout, self.reward, self.learner):
            group.shutdown()
        ray.kill(self.control)
        if self.colocated is not None:
            remove_placement_group(self.colocated)
