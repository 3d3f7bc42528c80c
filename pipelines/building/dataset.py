"""The data pipeline: logs -> parsed lines -> templates -> sessions -> prompt rows with reference rationales, as
parquet parts of a train and a test folder (`pipelines.prompts.store`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import ray

from contract.log_formats import BLOCK_FORMATS, TEMPLATES_FORMAT
from pipelines.building.report import write_data_report
from pipelines.building.steps import Built, fit_miner
from pipelines.building.stream_blocks import stream_blocks
from pipelines.building.stream_sessions import (
    ShardJob,
    clear_outputs,
    lines_before_window,
    merge_dead_letters,
    plan_window_shards,
    run_shards,
)
from pipelines.config import DataConfig
from pipelines.prompts.novelty import split_novelty
from pipelines.prompts.rows import (
    PROMPT_SETTINGS_FILE,
    PromptSettings,
    make_sessions,
    prompt_row,
    shown_as_itself,
    split_counts,
    tally_row,
    window_size_for,
)
from pipelines.prompts.store import PartWriter, load_examples, part_name, write_rows
from pipelines.prompts.teacher import RowTeacher, RuleTeacher, Teacher
from pipelines.reading.label_patch import read_patch_report
from pipelines.reading.read_logs import DEAD_LETTER_FILE, check_inputs, good_lines, parsed_lines, read_template_lines
from pipelines.sessions.grouping import mark_anomaly_lines, session_label
from pipelines.sessions.splits import (
    SPLITS,
    TRAIN,
    chronological_bounds,
    held_out_templates,
    stratified_splits,
    template_holdout_split,
)
from pipelines.templates.miner import UNSEEN_ID, LogTemplateMiner, TemplateMatcher

MINER_STATE_FILE = "miner_state.json"
SUMMARY_FILE = "summary.json"
ITER_BATCH_LINES = 4096


def iter_rows(ds: ray.data.Dataset, columns: list[str] | None = None) -> Iterator[dict]:
    """Stream rows to the driver in dataset order, a batch at a time (never the whole corpus at once)."""
    if columns:
        ds = ds.select_columns(columns)
    # Whole blocks as Ray Data stored them (zero-copy), sliced here: re-batching to a row count makes Ray Data's
    # batcher copy every block into this process's heap (measured: +200 MB peak RSS at 1M lines).
    for block in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for batch in block.to_batches(max_chunksize=ITER_BATCH_LINES):
            yield from batch.to_pylist()


def match_templates(lines: ray.data.Dataset, miner_path: Path, cfg: DataConfig) -> ray.data.Dataset:
    """Add template_id/template in parallel; each actor loads the frozen miner once."""
    return lines.map_batches(
        TemplateMatcher,
        fn_constructor_kwargs={"state_path": str(miner_path), "cache_size": cfg.match_cache_size},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cfg.match_workers),
        batch_format="pyarrow",
        batch_size=ITER_BATCH_LINES,
    )


def check_sessions(cfg: DataConfig) -> None:
    """Fail before reading anything when the session kind cannot produce labels for this format."""
    if cfg.format == TEMPLATES_FORMAT:
        return  # each template row is a session of its own
    if cfg.session == "time" and cfg.format in BLOCK_FORMATS:
        raise ValueError(f"session: time needs line labels: {cfg.format} labels blocks (use session: block)")
    if (cfg.session == "block") != (cfg.format in BLOCK_FORMATS):
        raise ValueError(
            f"{cfg.format} labels {'blocks' if cfg.format in BLOCK_FORMATS else 'lines'}: use session: block for "
            f"{' and '.join(BLOCK_FORMATS)} and only for them"
        )
    if cfg.session == "block" and not cfg.labels_path:
        raise ValueError("session: block needs data.labels_path (the BlockId,Label or seq_id,Label CSV)")


def _count_unmatched(rows: Iterable[dict], tally: dict) -> Iterator[dict]:
    """Pass rows through, counting lines the fitted miner could not match (should stay 0: it saw every line)."""
    for row in rows:
        tally["unmatched_lines"] += row["template_id"] == UNSEEN_ID
        yield row


def stream_windows(cfg: DataConfig, teacher: Teacher, paths: dict[str, Path]) -> Built:
    """Text logs in fixed windows: plan the shards (line counts), fit the miner on the training period's first
    lines, then one streaming pass writes every shard's rows (`stream_sessions`); the driver sees counts only."""
    regex = check_inputs(cfg)
    started = time.perf_counter()
    shards, windows, lines = plan_window_shards(cfg.paths, cfg.shard_bytes, cfg.window_size)
    n_windows = sum(windows.values())
    bounds = chronological_bounds(n_windows, cfg.train_fraction, cfg.validation_fraction)
    planned_at = time.perf_counter()
    period = parsed_lines(cfg, regex)
    if cfg.split != "template_holdout":  # the miner learns from the training period's lines only
        fitted_until = bounds[0] if cfg.validation_draw == "latest" else bounds[1]  # spread: validation inside it
        period = period.limit(lines_before_window(fitted_until, windows, lines, cfg.window_size))
    miner = fit_miner(good_lines(period), cfg)
    miner.save(paths["miner_state"])
    fitted_at = time.perf_counter()
    job = ShardJob(
        output_dir=cfg.output_dir,
        miner_path=str(paths["miner_state"]),
        fmt=cfg.format,
        regex=regex,
        window_size=cfg.window_size,
        bounds=bounds,
        max_prompt_tokens=cfg.max_prompt_tokens,
        teacher=teacher,
        max_line_bytes=cfg.max_line_bytes,
        invalid_utf8=cfg.invalid_utf8,
        match_cache_size=cfg.match_cache_size,
        held_out=held_out_for(miner, cfg) if cfg.split == "template_holdout" else None,
        validation_fraction=cfg.validation_fraction,
        seed=cfg.seed,
        validation_draw=cfg.validation_draw,
    )
    totals = run_shards(shards, job, cfg.match_workers)
    merge_dead_letters(Path(cfg.output_dir), paths["dead_letter"])
    seconds = {"plan": planned_at - started, "fit": fitted_at - planned_at, "shards": time.perf_counter() - fitted_at}
    n_good = totals["good_lines"]
    if n_good == 0:
        raise ValueError(f"data.paths: no usable lines in {cfg.paths} (see {paths['dead_letter']})")
    unmatched = totals["unmatched_lines"]
    built = Built(n_good, totals["dead_letters"], miner.n_templates, miner.fitted_lines, unmatched, totals["splits"])
    built.seconds = {stage: round(value, 2) for stage, value in seconds.items()}
    return built


def build_in_driver(cfg: DataConfig, teacher: Teacher, paths: dict[str, Path]) -> Built:
    """Template rows (a small CSV, one session per row): read, split, fitted on the training rows, matched and
    written in the driver."""
    table, dead_letters = read_template_lines(cfg)
    n_good = table.num_rows
    if n_good == 0:
        raise ValueError(f"data.paths: no usable lines in {cfg.paths} (see {paths['dead_letter']})")
    labels = [session_label([{"label": label}]) for label in table.column("label").to_pylist()]
    splits = None
    if cfg.split != "template_holdout":  # the miner learns from the training rows only
        splits = stratified_splits(labels, cfg.train_fraction, cfg.validation_fraction, cfg.seed)
        fitted_on = table.filter(pa.array([split == TRAIN for split in splits]))
    else:  # templates to hold out are the miner's: it learns from every row (no labels reach it)
        fitted_on = table
    miner = fit_miner(ray.data.from_arrow(fitted_on), cfg)
    miner.save(paths["miner_state"])
    held_out = held_out_for(miner, cfg)
    matched = match_templates(ray.data.from_arrow(table), paths["miner_state"], cfg)

    tally = {"unmatched_lines": 0}
    rows = (shown_as_itself(row) for row in _count_unmatched(iter_rows(matched), tally))
    sessions, _, _ = make_sessions(rows, cfg.format, cfg.window_size, n_good)
    counts = split_counts()
    writers = {split: PartWriter(paths[split] / part_name(0)) for split in SPLITS}
    try:
        for index, session in enumerate(sessions):
            if splits is not None:
                split = splits[index]
            else:
                ids = [line["template_id"] for line in session.lines]
                split = template_holdout_split(session.id, ids, held_out, cfg.validation_fraction, cfg.seed)
            mark_anomaly_lines(session.lines, None)
            row = prompt_row(session, split, cfg.max_prompt_tokens, teacher)
            writers[split].write(row)
            tally_row(counts[split], row)
    finally:
        for writer in writers.values():
            writer.close()
    return Built(n_good, dead_letters, miner.n_templates, miner.fitted_lines, tally["unmatched_lines"], counts)


def held_out_for(miner: LogTemplateMiner, cfg: DataConfig) -> frozenset[int]:
    """The templates `data.split: template_holdout` keeps out of training (none for the other splits)."""
    if cfg.split != "template_holdout":
        return frozenset()
    return held_out_templates(miner.template_sizes(), cfg.holdout_template_share, cfg.holdout_max_line_share, cfg.seed)


def build_prompt_dataset(cfg: DataConfig, teacher: Teacher | None = None) -> dict:
    """Run the whole pipeline for `cfg`; write prompts, miner, prompt settings, dead letters; return the summary."""
    check_sessions(cfg)
    teacher = teacher or build_teacher(cfg)
    rewriter, teacher_stats = row_teacher(cfg)  # fails on a bad teacher file before any work
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {split: out / split for split in SPLITS}
    paths |= {
        "dead_letter": out / DEAD_LETTER_FILE,
        "miner_state": out / MINER_STATE_FILE,
        "prompt_settings": out / PROMPT_SETTINGS_FILE,
        "summary": out / SUMMARY_FILE,
    }
    clear_outputs(out)
    timed = cfg.session == "time" and cfg.format != TEMPLATES_FORMAT
    if cfg.format in BLOCK_FORMATS or timed:
        built = stream_blocks(cfg, teacher, paths)
    else:
        built = (build_in_driver if cfg.format == TEMPLATES_FORMAT else stream_windows)(cfg, teacher, paths)

    if rewriter is not None:  # only train rows: they are the SFT targets; test references stay the rule's
        teacher_stats |= apply_row_teacher(paths["train"], rewriter)

    settings = PromptSettings(
        format=cfg.format,
        session=cfg.session,
        window_size=window_size_for(cfg.format, cfg.window_size),
        max_prompt_tokens=cfg.max_prompt_tokens,
        miner_file=MINER_STATE_FILE,
        anomaly_templates=built.indicative,
        expected_templates=built.expected,
        time_window_s=cfg.time_window_s if timed else None,
        regex=asdict(cfg.regex.to_format()) if cfg.regex else None,
    )
    settings.save(out)
    malformed = sum(built.dead_letters.values())
    summary = {
        "format": cfg.format,
        "session": cfg.session,
        "split": cfg.split,
        "teacher": teacher.name if rewriter is None else f"{rewriter.name} ({teacher.name} where rejected)",
        "teacher_stats": teacher_stats or None,
        "lines_read": built.good_lines + malformed,
        "good_lines": built.good_lines,
        "malformed": malformed,
        "dead_letters": built.dead_letters,
        "templates": built.templates,
        "drain_fit_lines": built.drain_fit_lines,
        "anomaly_templates": None if built.indicative is None else len(built.indicative),
        "expected_templates": None if built.expected is None else len(built.expected),
        "unmatched_lines": built.unmatched_lines,
        "unlabelled_sessions": built.unlabelled_sessions,
        "label_patch": read_patch_report(out) if cfg.label_patch else None,
        "window_size": settings.window_size if cfg.format not in BLOCK_FORMATS and not timed else None,
        "time_window_s": settings.time_window_s,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "splits": built.splits,
        "unseen_in_training": split_novelty(paths),
        "stage_seconds": built.seconds,
        "paths": {name: str(path) for name, path in paths.items()},
    }
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    write_data_report(summary, out)  # report.md + prompt_tokens.png beside the data
    return summary


def build_teacher(cfg: DataConfig) -> Teacher:
    """The build-time teacher of every row: the domain teacher for `teacher.kind: domain`, else the rule teacher
    (which endpoint and rlog answers replace where they are accepted)."""
    if cfg.teacher.kind == "domain":
        from pipelines.prompts.domain_teacher import DomainTeacher

        return DomainTeacher()
    return RuleTeacher()


def row_teacher(cfg: DataConfig) -> tuple[RowTeacher | None, dict]:
    """The configured teacher that rewrites train references after the build (None: the rule teacher's stay)."""
    if cfg.teacher.kind == "endpoint":
        from pipelines.prompts.endpoint_teacher import EndpointTeacher

        cache = cfg.teacher.endpoint.cache_dir or Path(cfg.output_dir) / "teacher_cache"
        return EndpointTeacher(cfg.teacher.endpoint, cache, data_format=cfg.format), {}
    if cfg.teacher.kind == "rlog":
        from pipelines.prompts.rlog_import import RLogTeacher, load_rlog

        trajectories, skipped = load_rlog(cfg.teacher.rlog_paths)
        return RLogTeacher(trajectories), {"records_used": len(trajectories), "records_skipped": dict(skipped)}
    return None, {}


def apply_row_teacher(path: Path, teacher: RowTeacher) -> dict:
    """Replace the reference of each row of a split the teacher accepts an answer for; the rest keep theirs."""
    rows = load_examples(path)
    result = teacher.teach(rows)
    refs = result.references
    write_rows(path, (row if ref is None else row | {"reference": ref} for row, ref in zip(rows, refs, strict=True)))
    return result.summary()


def raw_session_lines(row: dict, live: bool = False) -> list[str]:
    """The raw log lines of a fixed-window example, read back from its source file at its byte offset.

    `live=True` drops the alert-label column, giving the lines as a production log would carry them.
    """
    with open(row["source"], "rb") as handle:
        handle.seek(row["start_offset"])
        lines = [handle.readline().decode("utf-8", "replace").rstrip("\r\n") for _ in range(row["n_lines"])]
    return [line.split(None, 1)[1] if live else line for line in lines]
