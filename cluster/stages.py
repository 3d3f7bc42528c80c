"""The run's stages, each skipped when its output already exists: data, tiny model, SFT, GRPO, serve."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from cluster.config import ConfigError, LogrlConfig
from cluster.console import say
from cluster.environment import init_ray
from evaluation.config import EVAL_MODE_CHOICES


def ensure_data(cfg: LogrlConfig, force: bool = False) -> dict:
    """Prompts, miner state and dead letters under data.output_dir (built with Ray Data if missing)."""
    from pipelines.building.dataset import SUMMARY_FILE, build_prompt_dataset

    summary_path = Path(cfg.data.output_dir) / SUMMARY_FILE
    if summary_path.exists() and not force:
        summary = json.loads(summary_path.read_text())
    else:
        check_data_inputs(cfg)  # a wrong file fails here, in one line, before any Ray instance starts
        init_ray(cfg.ray.address, cfg.ray.num_cpus)
        summary = build_prompt_dataset(cfg.data)
        print(f"data summary: {json.dumps(summary)}", flush=True)
        print(data_line(summary), flush=True)
    ensure_classical_stage(cfg, summary, force)
    return summary


def check_data_inputs(cfg: LogrlConfig) -> None:
    """Input errors as one line naming the field and file, before any Ray instance starts: every `data.paths`
    file exists and, for the text window formats, its start looks like a log of `data.format`."""
    from contract.log_formats import BLOCK_FORMATS, TEMPLATES_FORMAT
    from pipelines.reading.read_logs import check_inputs
    from pipelines.reading.table_formats import require_file

    try:
        if cfg.data.format in BLOCK_FORMATS or cfg.data.format == TEMPLATES_FORMAT or cfg.data.session == "time":
            for index, path in enumerate(cfg.data.paths):  # their own readers check the contents
                require_file(path, f"data.paths[{index}]")
        else:
            check_inputs(cfg.data)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from None


def data_line(summary: dict) -> str:
    """The data phase in one line: lines read, dead letters, templates, the splits, the report."""
    splits = summary.get("splits", {})
    parts = ", ".join(f"{name} {s['sessions']} sessions ({s['anomalous']} anomalous)" for name, s in splits.items())
    dead = sum((summary.get("dead_letters") or {}).values())
    report = Path(summary.get("paths", {}).get("summary", "")).with_name("report.md")
    return (
        f"[data] {summary.get('lines_read', 0):,} lines, {dead} dead letters, {summary.get('templates', 0)} "
        f"templates; {parts}; report {report}"
    )


def ensure_classical_stage(cfg: LogrlConfig, summary: dict, force: bool = False) -> Path | None:
    """The cascade's first stage (template counts of the train split), saved beside the miner; None without a
    train split."""
    from pipelines.prompts.store import iter_examples
    from serving.cascade import STAGE_FILE, fit_classical_stage

    path = Path(cfg.data.output_dir) / STAGE_FILE
    train = (summary.get("paths") or {}).get("train")
    if path.exists() and not force:
        return path
    if not train or not Path(train).exists():
        return None
    rows = iter_examples(train, ["template_ids", "anomaly_lines", "label"])
    return fit_classical_stage(rows).save(path)


def ensure_model(cfg: LogrlConfig, force: bool = False) -> str:
    """The base model path; builds the tiny local model when `model.build_tiny` and it is missing.

    A registered base model name (`model.path: smollm2-135m`) becomes its converted folder, built if missing,
    and `cfg.model.path` is rewritten to that folder so every actor loads the same files.
    """
    from rl_actors.base_models import is_base_model_name, resolve_model_path

    if is_base_model_name(cfg.model.path):
        if cfg.model.build_tiny:
            raise ValueError(f"model.path {cfg.model.path!r} is a registered base model: set model.build_tiny: false")
        cfg.model.path = resolve_model_path(cfg.model.path)
        return cfg.model.path
    path = Path(cfg.model.path)
    if not cfg.model.build_tiny or (path.exists() and not force):
        if path.exists():
            print(f"[model] using {path}", flush=True)
        return cfg.model.path
    from rl_actors.prompt_source import training_view
    from rl_actors.tiny_model import build_tiny_model

    summary = ensure_data(cfg)
    started = time.perf_counter()

    def view(row: dict, key: str) -> dict:  # the perturbed views SFT and GRPO draw, one per pretraining draw
        return training_view(row, key, cfg.data.format, cfg.train.augment, cfg.train.seed)

    # The train split only: the tokenizer's merges and the pretraining never see held-out sessions.
    build_tiny_model(
        [summary["paths"]["train"]],
        path,
        cfg.tiny_model,
        cfg.model.max_model_len,
        cfg.sft.anomalous_share,
        view if cfg.tiny_model.pretrain_views else None,
    )
    print(f"[model] tiny model written to {path} ({time.perf_counter() - started:.0f}s)", flush=True)
    return cfg.model.path


def train_rows(cfg: LogrlConfig) -> Sequence[dict]:
    """The train split, read lazily (rows come from disk a row group at a time as training draws them)."""
    from pipelines.prompts.store import open_examples

    return open_examples(ensure_data(cfg)["paths"]["train"])


def run_sft_stage(cfg: LogrlConfig) -> Path:
    """LoRA SFT warm start; returns the adapter folder (version 0)."""
    from rl_actors.trainer import run_sft

    ensure_model(cfg)
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    path = run_sft(cfg, train_rows(cfg))
    print(f"[sft] adapter {path} ({time.perf_counter() - started:.0f}s)", flush=True)
    return path


def resume_point(cfg: LogrlConfig) -> Path:
    """The newest complete checkpoint of the run, or a clear error (none, or the run already finished)."""
    from rl_actors.checkpoint import latest_checkpoint, read_trainer_state
    from rl_actors.trainer import checkpoints_dir

    folder = latest_checkpoint(checkpoints_dir(cfg.train))
    if folder is None:
        raise FileNotFoundError(
            f"--resume: no complete checkpoint under {checkpoints_dir(cfg.train)} (set train.checkpoint_every)"
        )
    done = read_trainer_state(folder).step
    if done >= cfg.train.steps:
        raise ValueError(f"--resume: {folder} has {done} steps done; train.steps is {cfg.train.steps}: raise it")
    return folder


def run_train_stage(cfg: LogrlConfig, resume: bool = False) -> dict:
    """GRPO from the SFT adapter (running SFT first when it is configured and missing), or from a checkpoint."""
    from contract.adapter_store import PEFT_CONFIG_FILE, version_name
    from rl_actors.trainer import GRPOTrainer, adapters_dir

    ensure_model(cfg)
    checkpoint = resume_point(cfg) if resume else None
    init_adapter = cfg.train.init_adapter
    if init_adapter is None and cfg.sft.steps > 0:
        sft_dir = adapters_dir(cfg.train) / version_name(0)
        if (sft_dir / PEFT_CONFIG_FILE).exists():
            print(f"[sft] reusing the SFT adapter {sft_dir} (delete it to redo SFT)", flush=True)
            init_adapter = str(sft_dir)
        else:
            init_adapter = str(run_sft_stage(cfg))
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    trainer = GRPOTrainer(cfg, train_rows(cfg), init_adapter, resume=checkpoint)
    try:
        result = trainer.fit()
    finally:
        trainer.shutdown()
    print(f"[train] {cfg.train.steps} GRPO steps in {time.perf_counter() - started:.0f}s", flush=True)
    print(f"[train] adapter: {result['adapter']['path']}", flush=True)
    print(
        f"[train] metrics: {Path(result['log']) / 'metrics.jsonl'} (TensorBoard: {Path(result['log']) / 'tensorboard'})"
    )
    return result


def start_serving(cfg: LogrlConfig, adapter: str | None = None):
    """Deploy the detector app for the given, configured or latest trained adapter; returns the running handle."""
    from serving.launch import run_detector

    ensure_data(cfg)  # the miner state serving loads is written with the data
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    return run_detector(*detector_args(cfg, adapter))


def detector_args(cfg: LogrlConfig, adapter: str | None = None) -> tuple:
    """(serve_cfg, model, adapter, miner_state, format, max_prompt_tokens, regex) for the serving builders; regex
    is format regex's data.regex (None for the other formats)."""
    from contract.adapter_store import read_latest
    from pipelines.building.dataset import MINER_STATE_FILE

    adapter = adapter or cfg.serve.adapter or (read_latest(cfg.train.output_dir) or {}).get("path")
    if not adapter:
        raise FileNotFoundError(f"no adapter to serve: set serve.adapter or train into {cfg.train.output_dir} first")
    serve_cfg = cfg.serve.model_copy(update={"max_model_len": cfg.serve.max_model_len or cfg.model.max_model_len})
    from rl_actors.base_models import resolve_model_path

    model = resolve_model_path(cfg.serve.model or cfg.model.path)
    miner_state = str(Path(cfg.data.output_dir) / MINER_STATE_FILE)  # the miner training used
    regex = cfg.data.regex.to_format() if cfg.data.regex else None
    return serve_cfg, model, adapter, miner_state, cfg.data.format, cfg.data.max_prompt_tokens, regex


def eval_arms(
    cfg: LogrlConfig, adapter: str | None = None, no_adapter: bool = False, extra_arms: dict[str, str] | None = None
) -> list:
    """The model arms to evaluate: the base model (`no_adapter`) or the given/latest adapter, then any named extras."""
    from contract.adapter_store import adapter_version, read_latest
    from evaluation.inference import ArmSpec

    latest = read_latest(cfg.train.output_dir)
    arms = []
    if no_adapter:
        arms.append(ArmSpec("base", None))
    else:
        path = adapter or (None if extra_arms else (latest or {}).get("path"))  # named arms replace the default
        if not path and not extra_arms:
            raise FileNotFoundError(
                f"no adapter to evaluate: pass --adapter DIR or --no-adapter, or train into {cfg.train.output_dir}"
            )
        if path:
            arms.append(ArmSpec("adapter", str(Path(path).resolve()), adapter_version(path, latest)))
    for name, path in (extra_arms or {}).items():
        arms.append(ArmSpec(name, str(Path(path).resolve()), adapter_version(path, latest)))
    if len({arm.name for arm in arms}) < len(arms):
        raise ValueError(f"arm names must be distinct: {[arm.name for arm in arms]}")
    return arms


def run_eval_stage(
    cfg: LogrlConfig,
    adapter: str | None = None,
    no_adapter: bool = False,
    data: str | None = None,
    mode: str = "both",
    out: str | None = None,
    limit: int | None = None,
    extra_arms: dict[str, str] | None = None,
    train_subset: Sequence[dict] | None = None,
    protocol: str = "split",
) -> dict:
    """Evaluate model arms and the baselines on held-out rows; writes the report folder and returns its metrics.

    Fast-mode thresholds and the baselines' are chosen on the validation split (when the data has one), the
    unseen-template slice is cut against the train split's templates, and session formats get a perturbed copy
    of the rows for the flip rate. `train_subset` (the label curve) replaces the train split the baselines fit on.
    """
    from contract.log_formats import TEMPLATES_FORMAT
    from evaluation.baselines import run_baselines
    from evaluation.inference import evaluate_arms
    from evaluation.report import arm_key, report_table, write_report
    from evaluation.stats import best_threshold
    from pipelines.building.dataset import load_examples
    from pipelines.prompts.augment import perturbed_copy
    from pipelines.prompts.novelty import has_unseen_template, seen_templates

    arms = eval_arms(cfg, adapter, no_adapter, extra_arms)
    summary, rows, source = eval_rows(cfg, data, limit)
    modes = EVAL_MODE_CHOICES[mode]
    train = list(train_subset) if train_subset is not None else load_examples(summary["paths"]["train"])
    validation = validation_rows(summary)
    extra = {}
    if validation and "fast" in modes:
        extra["validation"] = (validation, "fast")
    if cfg.data.format != TEMPLATES_FORMAT and "fast" in modes:
        extra["perturbed"] = (perturbed_copy(rows, cfg.data.seed), "fast")
    ensure_model(cfg)
    from transformers import AutoTokenizer

    from evaluation.inference import fast_token_budget

    fast_budget = fast_token_budget(AutoTokenizer.from_pretrained(cfg.model.path), cfg.eval.fast_max_new_tokens)
    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    started = time.perf_counter()
    results, more = evaluate_arms(
        cfg.model.path,
        cfg.model,
        cfg.rollout,
        arms,
        rows,
        modes,
        fast_budget,
        cfg.eval.batch_size,
        cfg.data.format,
        extra,
        cfg.eval.force_verdict,
    )
    labels = [row["label"] for row in validation]
    thresholds = {
        arm_key(arm): best_threshold(labels, [p.score for p in arm.predictions]) for arm in more.get("validation", [])
    }
    baselines = run_baselines(train, rows, cfg.eval, validation)
    seen = seen_templates(row["template_ids"] for row in train)
    unseen = [has_unseen_template(row["template_ids"], seen) for row in rows]
    out_dir = Path(out or Path(cfg.train.output_dir) / "eval")
    logs = {"run": Path(cfg.train.output_dir) / "metrics.jsonl"}
    logs |= {arm.name: Path(arm.adapter_path).parent.parent / "metrics.jsonl" for arm in arms if arm.adapter_path}
    info = {
        "protocol": protocol,
        "data_source": source,
        "model": cfg.model.path,
        "modes": ", ".join(modes),
        "reason_max_new_tokens": cfg.rollout.max_new_tokens,
        "fast_max_new_tokens": fast_budget,
        "force_verdict": cfg.eval.force_verdict,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "thresholds": "chosen on the validation rows" if validation else "0.5 (no validation split)",
        "unseen_template_rows": sum(unseen),
    }
    metrics = write_report(
        out_dir,
        results,
        baselines,
        rows,
        info,
        _distinct_logs(logs),
        thresholds,
        unseen,
        more.get("perturbed", ()),
        more.get("validation", ()),
    )
    if cfg.train.mlflow:  # into the training run's MLflow run: the report folder and its headline numbers
        from rl_actors.tracking import MlflowRun, eval_metrics

        run = MlflowRun.of_training(cfg.train)
        run.log_metrics(0, eval_metrics(metrics))
        run.log_artifacts(out_dir, f"eval/{out_dir.name}")
        run.finish()
    say(report_table(metrics))
    print(f"[eval] report: {out_dir / 'report.md'} ({time.perf_counter() - started:.0f}s)", flush=True)
    return {"out": str(out_dir), "metrics": metrics}


def eval_rows(cfg: LogrlConfig, data: str | None = None, limit: int | None = None) -> tuple[dict, list[dict], str]:
    """The prepared data's summary (prepared now if need be), the rows an eval scores (`data`'s logs rendered with
    the run's miner, else the test split; a seeded sample of `limit` keeping the label mix) and where they came
    from."""
    from pipelines.building.dataset import load_examples

    regex = cfg.data.regex.to_format() if cfg.data.regex else None
    if data:
        from pipelines.eval_data import check_spec

        try:
            check_spec(data, regex, cfg.data.format)  # a bad --data fails in one line, before any work
        except ValueError as err:
            raise ConfigError(str(err)) from None
    summary = ensure_data(cfg)  # baselines fit on its train split; --data rows are rendered with its miner
    if data:
        from pipelines.eval_data import load_eval_rows

        rows, source = load_eval_rows(data, cfg.data.output_dir, label_patch=cfg.data.label_patch, regex=regex), data
    else:
        rows, source = load_examples(summary["paths"]["test"]), str(summary["paths"]["test"])
    if limit and limit < len(rows):  # a seeded sample that keeps the label mix, not the first rows
        from pipelines.sessions.grouping import stratified_train

        keep = stratified_train([row["label"] for row in rows], limit / len(rows), cfg.data.seed)
        rows = [row for row, kept in zip(rows, keep) if kept]
        source = f"{source} (stratified sample of {len(rows)}, seed {cfg.data.seed})"
    if not rows:
        raise ValueError(f"no rows to evaluate in {source}")
    return summary, rows, source


def validation_rows(summary: dict) -> list[dict]:
    """The validation split, or none (data prepared without one, or before there were validation splits)."""
    from pipelines.building.dataset import load_examples

    path = summary["paths"].get("validation")
    if not path or not Path(path).exists():
        return []
    return load_examples(path)


def _distinct_logs(logs: dict[str, Path]) -> dict[str, Path]:
    """Training logs that exist, each once (arms of the same run share one)."""
    seen, out = set(), {}
    for name, path in logs.items():
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            out[name] = path
    return out
