"""Block sessions (HDFS block ids) as a streaming Ray Data group-by: no line and no session passes the driver.

The miner is fitted on the first lines, as for fixed windows. Then read tasks parse, match and explode lines by
block id (`block_stages.block_lines`; dead letters and counts go to side files), and a hash shuffle by block id
makes each block one session row (`block_stages.block_sessions_of`) in an intermediate parquet folder. Then:

- the driver reads only each session's label and time key, ranks the labelled sessions in time order and cuts
  the split (a float, three ints and a label per session while ranking; then a rank per session);
- Ray tasks count the templates of each intermediate part's training sessions; the driver adds the counts up
  into the template profile (bounded by the number of templates);
- a second shuffle, by output part (`SESSIONS_PER_PART` consecutive ranks), renders the prompt rows into train/
  and test/ parts whose name order is time order.

The rows, their order and the counts are those of grouping in one process (`grouping.block_sessions`, then
`order_by_time`, `template_profile`, `prompt_row`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from pipelines.building.block_stages import (
    KEY_COLUMNS,
    SESSIONS_PER_PART,
    STATS_DIR,
    LineJob,
    RenderJob,
    block_lines,
    block_sessions_of,
    loglead_row_groups,
    part_template_counts,
    ranked_sessions,
    read_loglead_row_groups,
    render_part,
)
from pipelines.building.steps import Built, fit_miner
from pipelines.building.stream_sessions import count_lines_task, merge_dead_letters
from pipelines.config import DataConfig
from pipelines.prompts.rows import split_counts
from pipelines.prompts.teacher import Teacher
from pipelines.reading.label_patch import write_patch_report
from pipelines.reading.read_logs import check_inputs, good_lines, parsed_lines, plan_shards
from pipelines.reading.table_formats import check_loglead_events, read_session_labels
from pipelines.sessions.grouping import TemplateCounts, TemplateProfile
from pipelines.sessions.splits import (
    SPLIT_CODES,
    TEST,
    TRAIN,
    VALIDATION,
    chronological_bounds,
    drawn_validation,
    stratified_splits,
)

SESSIONS_DIR = ".block_sessions"
PARTITION_LINES = 1 << 19  # LogLead rows per shuffle partition (text logs: one partition per read shard)


def shuffle_partitions(estimate: int) -> int:
    """Partitions of the shuffle by block id: one per read shard's worth of lines (more only adds tasks: on the
    bundled sample, one per CPU was no faster)."""
    return max(estimate, 1)


def stream_blocks(cfg: DataConfig, teacher: Teacher, paths: dict[str, Path]) -> Built:
    """Block-labelled logs (`hdfs` text, `loglead_hdfs` events) -> prompt rows, grouped and sorted by Ray Data."""
    twice = sorted({path for path in cfg.paths if cfg.paths.count(path) > 1})
    if twice:  # lines are known by (file index, offset): a file read twice would mix its copies' side files
        raise ValueError(f"data.paths: {twice} listed more than once")
    timed = cfg.session == "time"  # time windows of line-labelled logs: no labels file, no template profile
    labels = None if timed else read_session_labels(cfg.labels_path)  # a bad labels file fails before any work
    out = Path(cfg.output_dir)
    folder = out / SESSIONS_DIR
    for stale in (folder, out / STATS_DIR):
        shutil.rmtree(stale, ignore_errors=True)
    write_patch_report(out, None)  # labels come per block: no label patch
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        seconds[stage] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    lines, partitions, n_lines = block_input(cfg)
    # The training period, approximately: sessions split by their first time, lines arrive in log order.
    training_lines = math.ceil(n_lines * cfg.train_fraction)
    period = lines.limit(training_lines)
    miner = fit_miner(period if cfg.format == "loglead_hdfs" else good_lines(period), cfg)
    miner.save(paths["miner_state"])
    lap("fit")
    job = LineJob(str(out), str(paths["miner_state"]), cfg.match_cache_size, list(cfg.paths))
    job.time_window_s = cfg.time_window_s if timed else None
    labels_refs = [] if timed else [ray.put(labels)]
    del labels  # the workers read them from the object store
    with any_order():
        (
            lines.map_batches(block_lines, fn_kwargs={"job": job}, batch_format="pyarrow", batch_size=None)
            .repartition(partitions, keys=["block_id"])  # hash shuffle: all lines of a block meet in one block
            .map_batches(block_sessions_of, fn_kwargs={"labels": labels_refs}, batch_format="pyarrow", batch_size=None)
            .write_parquet(str(folder))
        )
    totals = line_totals(out / STATS_DIR)
    merge_dead_letters(out, paths["dead_letter"])
    if totals["good_lines"] == 0:
        raise ValueError(f"data.paths: no usable lines in {cfg.paths} (see {paths['dead_letter']})")
    lap("group")
    parts = sorted(folder.glob("*.parquet"))
    ranks, splits, unlabelled = rank_sessions(parts, cfg)
    lap("split")
    trains = splits == SPLIT_CODES[TRAIN]
    profile = TemplateProfile(None, None) if timed else train_profile(parts, ranks, trains, cfg)
    if hasattr(teacher, "expected"):  # the offline teachers explain a missing event by the expected templates
        teacher.expected = profile.expected
    lap("profile")
    render = RenderJob(str(out), splits, profile.indicative, cfg.max_prompt_tokens, teacher)
    counts = render_sessions(parts, ranks, render)
    shutil.rmtree(folder)
    lap("render")

    n_good = totals["good_lines"]
    built = Built(
        n_good, totals["dead_letters"], miner.n_templates, miner.fitted_lines, totals["unmatched_lines"], counts
    )
    built.unlabelled_sessions, built.indicative, built.expected = unlabelled, profile.indicative, profile.expected
    built.seconds = seconds
    return built


def block_input(cfg: DataConfig) -> tuple[ray.data.Dataset, int, int]:
    """The input lines in order (text logs parsed, dead letters included), how many shuffle partitions, and how
    many lines (text: counted in parallel Ray tasks; LogLead: from the parquet metadata)."""
    if cfg.format != "loglead_hdfs":
        regex = check_inputs(cfg)
        shards = plan_shards(cfg.paths, cfg.shard_bytes)
        n_lines = sum(ray.get([count_lines_task.remote(shard) for shard in shards]))
        return parsed_lines(cfg, regex), shuffle_partitions(len(shards)), n_lines
    for path in cfg.paths:
        check_loglead_events(path)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # the fit reads the first lines
    items = loglead_row_groups(cfg.paths)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in cfg.paths)
    lines = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        read_loglead_row_groups, batch_size=1, batch_format="pyarrow"
    )
    return lines, shuffle_partitions(math.ceil(rows / PARTITION_LINES)), rows


@contextmanager
def any_order() -> Iterator[None]:
    """Let Ray Data run out of order: what these stages write is named by its place, not by when it ran."""
    options = ray.data.DataContext.get_current().execution_options
    ordered, options.preserve_order = options.preserve_order, False
    try:
        yield
    finally:
        options.preserve_order = ordered


def line_totals(folder: Path) -> dict:
    """Add up (and remove) the read batches' counts: good lines, unmatched lines, dead letters per kind."""
    totals = {"good_lines": 0, "unmatched_lines": 0, "dead_letters": Counter()}
    for part in sorted(folder.glob("part-*.json")):
        one = json.loads(part.read_text())
        totals["good_lines"] += one["good_lines"]
        totals["unmatched_lines"] += one["unmatched_lines"]
        totals["dead_letters"].update(one["dead_letters"])
        part.unlink()
    if folder.is_dir():
        folder.rmdir()
    totals["dead_letters"] = dict(sorted(totals["dead_letters"].items()))
    return totals


def rank_sessions(parts: list[Path], cfg: DataConfig) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Per intermediate part, each session's rank in time order (-1: unlabelled); per rank, its split code;
    how many sessions are unlabelled. Reads only the label and the time key of each session."""
    if not parts:
        return [], np.zeros(0, np.int8), 0
    keys = [pq.read_table(part, columns=["label", *KEY_COLUMNS]) for part in parts]
    table = pa.concat_tables(keys)
    labelled = pc.is_valid(table.column("label")).to_numpy(zero_copy_only=False)
    in_time = table.filter(labelled)
    order = pc.sort_indices(in_time, sort_keys=[(name, "ascending") for name in KEY_COLUMNS]).to_numpy()
    ranks = np.full(table.num_rows, -1, np.int64)
    ranks[np.flatnonzero(labelled)[order]] = np.arange(len(order))
    if cfg.split == "stratified":
        labels = in_time.column("label").take(pa.array(order)).to_pylist()
        names = stratified_splits(labels, cfg.train_fraction, cfg.validation_fraction, cfg.seed)
        splits = np.array([SPLIT_CODES[name] for name in names], np.int8)
    else:
        first_validation, first_test = chronological_bounds(len(order), cfg.train_fraction, cfg.validation_fraction)
        splits = np.full(len(order), SPLIT_CODES[TRAIN], np.int8)
        if cfg.validation_draw == "latest":
            splits[first_validation:first_test] = SPLIT_CODES[VALIDATION]
        else:  # spread: a seeded share of each label across the training period
            labels = in_time.column("label").take(pa.array(order[:first_test])).to_pylist()
            validates = np.array(drawn_validation(labels, cfg.validation_fraction, cfg.seed), bool)
            splits[:first_test][validates] = SPLIT_CODES[VALIDATION]
        splits[first_test:] = SPLIT_CODES[TEST]
    bounds = np.cumsum([key.num_rows for key in keys])[:-1]
    return np.split(ranks, bounds), splits, table.num_rows - len(order)


def train_profile(parts: list[Path], ranks: list[np.ndarray], trains: np.ndarray, cfg: DataConfig) -> TemplateProfile:
    """`grouping.template_profile` of the training sessions, from template counts made per part in Ray tasks."""
    counts = TemplateCounts()
    trains_ref = ray.put(trains)
    tasks = [part_template_counts.remote(str(part), rank, trains_ref) for part, rank in zip(parts, ranks)]
    for part_counts in ray.get(tasks):
        counts.merge(part_counts)
    return counts.profile(cfg.anomaly_template_max_normal_share, cfg.expected_template_share)


def render_sessions(parts: list[Path], ranks: list[np.ndarray], job: RenderJob) -> dict:
    """Shuffle the labelled sessions by output part (a partition each: parts render in parallel) and render them;
    the splits' counts."""
    totals = split_counts()
    n_parts = math.ceil(len(job.splits) / SESSIONS_PER_PART)
    if not n_parts:
        return totals
    items = [{"path": str(part), "index": index} for index, part in enumerate(parts)]
    with any_order():
        rendered = (
            ray.data.from_items(items, override_num_blocks=len(items))
            .map_batches(ranked_sessions, fn_kwargs={"ranks": [ray.put(ranks)]}, batch_size=1, batch_format="pyarrow")
            .groupby("part", num_partitions=n_parts)
            .map_groups(render_part, fn_kwargs={"job": job}, batch_format="pyarrow")
        )
        batches = list(rendered.iter_batches(batch_format="pyarrow", batch_size=None))  # one small row per part
    for batch in batches:
        for text in batch.column("counts").to_pylist():
            for split, counts in json.loads(text).items():
                for key, value in counts.items():
                    totals[split][key] += value
    return totals
