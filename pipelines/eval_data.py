"""Evaluation rows from a data spec, rendered with a training run's frozen miner and prompt settings (no Ray)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from contract.log_formats import BLOCK_FORMATS, LOG_FORMATS, REGEX_FORMAT, TEMPLATES_FORMAT
from pipelines.prompts.rows import PromptSettings, make_sessions, prompt_row, shown_as_itself
from pipelines.prompts.teacher import RuleTeacher, Teacher
from pipelines.reading.log_formats import MISSING_REGEX, MalformedLine, line_parser
from pipelines.reading.read_logs import read_shard
from pipelines.reading.regex_format import RegexFormat
from pipelines.reading.table_formats import read_loglead_table, read_session_labels, read_template_records, require_file
from pipelines.sessions.grouping import mark_anomaly_lines
from pipelines.templates.miner import LogTemplateMiner

EVAL_SPLIT = "eval"
SPEC_FIELD = "--data"
SPEC_HELP = "FORMAT:PATH[,LABELS_PATH], e.g. bgl:data/bgl/BGL_2k.log; FORMAT regex reads PATH with the run's data.regex"

log = logging.getLogger(__name__)


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """`FORMAT:PATH[,LABELS_PATH]` -> (format, path, labels path); block formats need labels, others take none.

    Every format prepare-data reads is accepted; `regex` has no regex in the spec: it is the run's `data.regex`.
    """
    fmt, colon, rest = spec.partition(":")
    path, _, labels = rest.partition(",")
    if not colon or not path:
        raise ValueError(f"{SPEC_FIELD} {spec!r}: expected {SPEC_HELP}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"{SPEC_FIELD} {spec!r}: unknown format {fmt!r}; known: {list(LOG_FORMATS)}")
    if fmt in BLOCK_FORMATS and not labels:
        raise ValueError(f"{SPEC_FIELD} {spec!r}: {fmt} is labelled per block: add ,LABELS_PATH (the labels CSV)")
    if fmt not in BLOCK_FORMATS and labels:
        raise ValueError(f"{SPEC_FIELD} {spec!r}: {fmt} carries its own labels: give no LABELS_PATH")
    return fmt, path, labels or None


def check_spec(spec: str, regex: RegexFormat | None, run_format: str) -> str:
    """The spec's format, after `parse_spec`'s checks and one more: format regex needs the run's data.regex."""
    fmt = parse_spec(spec)[0]
    if fmt == REGEX_FORMAT and regex is None:
        raise ValueError(f"{SPEC_FIELD} {spec!r}: {MISSING_REGEX}; this run's data.format is {run_format}")
    return fmt


def _text_records(path: str, fmt: str, tally: dict, regex: RegexFormat | None) -> Iterator[dict]:
    """Parsed good lines of a text log (plain or .gz) with their byte offsets; malformed lines are counted."""
    require_file(path, SPEC_FIELD)
    parse = line_parser(fmt, regex)
    for line, raw in enumerate(read_shard({"source": path, "start": 0, "end": -1})):
        if raw["kind"]:  # not a text line (binary, too long, truncated .gz, empty file)
            tally["malformed"] += 1
            continue
        try:
            record = parse(raw["text"])
        except MalformedLine:
            tally["malformed"] += 1
            continue
        yield {"source": raw["source"], "offset": raw["offset"], "line": line, **record}


def read_eval_records(
    fmt: str, path: str, miner: LogTemplateMiner, regex: RegexFormat | None = None
) -> tuple[list[dict], int]:
    """Every good line record of one input, templated by the frozen miner, and how many lines were malformed.

    `regex`: format regex's line regex and label rule (the run's data.regex); the other formats take none."""
    tally = {"malformed": 0}
    if fmt == "loglead_hdfs":
        records = read_loglead_table(path, SPEC_FIELD).to_pylist()
    elif fmt == TEMPLATES_FORMAT:
        records = read_template_records(path, SPEC_FIELD)
    else:
        records = list(_text_records(path, fmt, tally, regex))
    if not records:
        raise ValueError(f"{SPEC_FIELD}: {path}: no usable {fmt} lines ({tally['malformed']} malformed)")
    for record in records:
        record["template_id"], record["template"] = miner.match(record["content"])  # never refitted on eval data
        if fmt == TEMPLATES_FORMAT:
            shown_as_itself(record)
    return records, tally["malformed"]


def load_eval_rows(
    spec: str,
    run_data_dir: str | Path,
    teacher: Teacher | None = None,
    label_patch: str | None = None,
    regex: RegexFormat | None = None,
) -> list[dict]:
    """Rows like test.jsonl's (split "eval") for every session of the input named by `spec`.

    Rendered with the run's `miner_state.json` and `prompt_settings.json` (window size, token budget,
    anomaly-indicative templates), so the model sees prompts exactly as in training. A template set gets the run's
    `label_patch` (expert corrections) applied, as training's did. A `regex:PATH` spec reads PATH with `regex`
    (the config's data.regex), by default the copy prepare-data saved in the run's prompt settings.
    """
    fmt, path, labels_path = parse_spec(spec)
    settings = PromptSettings.load(run_data_dir)
    regex = regex or settings.line_regex()
    check_spec(spec, regex, settings.format)
    miner = LogTemplateMiner.load(require_file(Path(run_data_dir) / settings.miner_file, "miner_file"))
    labels = read_session_labels(labels_path, f"{SPEC_FIELD} labels") if labels_path else None
    records, malformed = read_eval_records(fmt, path, miner, regex)
    if label_patch and fmt == TEMPLATES_FORMAT:
        from pipelines.reading.label_patch import apply_label_patch, load_label_patch

        apply_label_patch(records, load_label_patch(label_patch))
    sessions, _, unlabelled = make_sessions(
        records, fmt, settings.window_size, len(records), labels, settings.time_window_s
    )
    indicative = (settings.anomaly_templates or {}) if fmt in BLOCK_FORMATS else None
    teacher = teacher or RuleTeacher(settings.expected_templates)
    rows = []
    for session in sessions:
        mark_anomaly_lines(session.lines, indicative)
        rows.append(prompt_row(session, EVAL_SPLIT, settings.max_prompt_tokens, teacher))
    if malformed or unlabelled:
        log.warning("%s: %d malformed lines skipped, %d unlabelled sessions left out", path, malformed, unlabelled)
    if not rows:
        raise ValueError(f"{SPEC_FIELD}: {labels_path}: no session of {path} has a label")
    return rows
