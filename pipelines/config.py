"""Typed settings for reading logs and building prompts (the `data` section of the YAML config)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.log_formats import BLOCK_FORMATS, REGEX_FORMAT, TEMPLATES_FORMAT, DataFormat
from pipelines.reading.regex_format import RegexFormat, line_pattern_problem, timestamp_problem
from pipelines.templates.masking import masking_rules


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]  # Ray's, for each actor role


class RegexConfig(StrictModel):
    """The generic format (`data.format: regex`): any text log read by one header regex and a label rule."""

    line: str = Field(
        description="Regex matched at the start of each line; named groups among label, timestamp, node, level, "
        "component, content fill the record (content is required). A line it does not match is a dead letter."
    )
    timestamp_format: str | None = Field(
        None, description="strptime format of the `timestamp` group (UTC unless it has a zone), or `unix` seconds."
    )
    anomaly: str | None = Field(
        None, description="Label rule: a regex searched in the whole line; a match marks the line anomalous."
    )
    normal_labels: list[str] = Field(
        ["-"], description="Label rule with a `label` group: its values that mean normal (others are alerts)."
    )

    @field_validator("line")
    @classmethod
    def _line_is_a_header_regex(cls, value: str) -> str:
        problem = line_pattern_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _timestamp_format(cls, value: str | None) -> str | None:
        problem = value and timestamp_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("anomaly")
    @classmethod
    def _anomaly_compiles(cls, value: str | None) -> str | None:
        try:
            value and re.compile(value)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
        return value

    @model_validator(mode="after")
    def _one_label_rule(self) -> RegexConfig:
        groups = re.compile(self.line).groupindex
        if self.anomaly and "label" in groups:
            raise ValueError("anomaly: give either a `label` group in data.regex.line or an anomaly regex, not both")
        if self.timestamp_format and "timestamp" not in groups:
            raise ValueError("timestamp_format: data.regex.line has no `timestamp` group")
        return self

    def to_format(self) -> RegexFormat:
        return RegexFormat(self.line, self.timestamp_format, self.anomaly, tuple(self.normal_labels))


class EndpointTeacherConfig(StrictModel):
    """An OpenAI-compatible chat endpoint (a vLLM server, this project's Serve app) writing train references."""

    url: str = Field(description="Base URL of the API, e.g. http://127.0.0.1:8000/v1 (/chat/completions is added).")
    model: str = Field(description="Model name sent with every request.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (the key never goes in the config)."
    )
    max_concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    requests_per_second: float = Field(4.0, gt=0, description="Rate limit over all requests, retries included.")
    max_retries: int = Field(4, ge=0, description="Retries after a 429, a 5xx, a timeout or a connection error.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles per retry (Retry-After wins).")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_tokens: int = Field(512, ge=16, description="Completion token limit per answer.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy).")
    max_rationale_chars: int = Field(
        1500, ge=50, description="Longer rationales are rejected (the student model has to learn to write them)."
    )
    cache_dir: str | None = Field(
        None,
        description="On-disk answer cache, keyed by a hash of (model, messages, max_tokens, temperature); "
        "default <data.output_dir>/teacher_cache. A rerun asks only what is not cached.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class TeacherConfig(StrictModel):
    """Who writes the reference rationale of each train session (the CoT SFT target)."""

    kind: Literal["rule", "domain", "endpoint", "rlog"] = Field(
        "rule",
        description="rule: offline rule teacher (every row); domain: offline teacher naming the kind of fault, or "
        "why a line is handled or routine, opened by its stance (every row); endpoint: an LLM answers each train "
        "prompt, answers "
        "whose verdict matches the label replace the rule rationale; rlog: R-Log trajectories whose input is the "
        "row's template and whose answer matches its label replace it (template sets only).",
    )
    endpoint: EndpointTeacherConfig | None = Field(None, description="Settings of kind endpoint.")
    rlog_paths: list[str] = Field(
        [], description="kind rlog: R-Log JSON files (arrays of instruction/input/label/reasoning records)."
    )

    @model_validator(mode="after")
    def _settings_of_the_kind(self) -> TeacherConfig:
        if self.kind == "endpoint" and self.endpoint is None:
            raise ValueError("endpoint: required for kind endpoint")
        if self.kind == "rlog" and not self.rlog_paths:
            raise ValueError("rlog_paths: required for kind rlog")
        return self


class DataConfig(StrictModel):
    """Where the logs are and how they become labelled, prompt-ready sessions."""

    paths: list[str] = Field(
        description="Inputs, read in the order given: log files (plain or .gz); for loglead_hdfs the events "
        "parquet files; for templates the `log,label` CSV files."
    )
    format: DataFormat = Field(
        "bgl",
        description="bgl/thunderbird/spirit: alert label as first token; hdfs: raw lines + block labels CSV; "
        "loglead_hdfs: LogLead events parquet + `seq_id,Label` CSV; templates: LogPrompt `log,label` CSV "
        "(1 = abnormal), one single-line session per row; regex: any text log read by data.regex.",
    )
    labels_path: str | None = Field(
        None,
        validation_alias=AliasChoices("labels_path", "hdfs_labels_path"),
        description="Per-block labels for hdfs/loglead_hdfs: CSV `BlockId,Label` or `seq_id,Label`, "
        "Label Normal|Anomaly (`hdfs_labels_path` is accepted as the old name).",
    )
    regex: RegexConfig | None = Field(None, description="Header regex and label rule of format regex.")
    max_line_bytes: int = Field(
        1 << 16,
        ge=256,
        description="Longer lines (bytes, line ending excluded) are dead letters (`line too long`) and are never "
        "held in memory whole.",
    )
    invalid_utf8: Literal["dead_letter", "replace"] = Field(
        "dead_letter",
        description="A line with bytes that are not UTF-8: a dead letter, or kept with U+FFFD in their place.",
    )
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="Reference rationale writer.")
    session: Literal["fixed", "block", "time"] = Field(
        "fixed",
        description="fixed: windows of window_size lines; time: windows of time_window_s seconds (line-labelled "
        "text logs with time stamps); block: block sessions (hdfs/loglead_hdfs); templates ignore it.",
    )
    time_window_s: int = Field(
        60,
        ge=1,
        description="Seconds per session of session: time (a line's window starts at its time rounded down to a "
        "multiple of this, in unix seconds; a line without a time joins no window).",
    )
    label_patch: str | None = Field(
        None,
        description="templates only: a JSON label patch (RationAnomaly's `rationanomaly_anomaly_patch.json` "
        "format: records with `input` template text and `rectified` normal|abnormal) applied by exact text "
        "match when the CSVs are read; summary.json reports labels changed and entries that matched nothing.",
    )
    window_size: int = Field(20, ge=1, description="Lines per fixed window.")
    split: Literal["chronological", "stratified", "template_holdout"] = Field(
        "chronological",
        description="chronological: earliest sessions train; stratified: seeded split per label "
        "(required for templates, which have no time order); template_holdout: a seeded share of the templates "
        "(`holdout_template_share`) and every session showing one of them are test, the rest train (fixed windows "
        "and templates).",
    )
    seed: int = Field(0, description="Seed of the stratified split, the validation draw and the template holdout.")
    validation_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of the training sessions held out as a validation split (written to `validation/`, never "
        "trained on): `logrl eval` chooses decision thresholds on it, never on test. chronological: the latest "
        "training sessions; stratified: seeded per label; template_holdout: a seeded draw per session.",
    )
    validation_draw: Literal["latest", "spread"] = Field(
        "latest",
        description="split chronological: which training sessions validate. latest: the end of the training period "
        "(nearest the test period); spread: a seeded share drawn across it (per label for blocks and time sessions), "
        "so a burst at the period's end (HDFS: re-replicated blocks labelled normal) does not decide the thresholds.",
    )
    holdout_template_share: float = Field(
        0.2, gt=0, lt=1, description="split template_holdout: share of the eligible templates held out of training."
    )
    holdout_max_line_share: float = Field(
        0.01,
        gt=0,
        le=1,
        description="split template_holdout: only templates with at most this share of the fitted lines can be "
        "held out (a routine template in every window would send every window to test).",
    )
    anomaly_template_max_normal_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Block labels: a template seen in anomalous training sessions and in at most this share of "
        "normal ones carries the anomaly (its lines are the evidence to cite).",
    )
    expected_template_share: float = Field(
        0.99,
        gt=0,
        le=1,
        description="Block labels: a template in at least this share of normal training sessions is expected; "
        "the teacher explains an anomalous session lacking one by the missing event.",
    )
    train_fraction: float = Field(0.7, gt=0, lt=1, description="Share of sessions for training.")
    max_prompt_tokens: int = Field(
        640,
        ge=32,
        description="Token budget of a rendered session (estimated as UTF-8 bytes / 3); when the template groups "
        "do not fit, severe, then rare, then early groups are kept and the rest is announced as not shown.",
    )
    shard_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="Byte range per Ray Data read task (about a second of columnar read + parse: enough to pay for "
        "starting a worker).",
    )
    drain_sim_threshold: float = Field(0.4, gt=0, lt=1, description="drain3 similarity threshold.")
    drain_depth: int = Field(4, ge=3, description="drain3 parse-tree depth.")
    masking_file: str | None = Field(
        None,
        description="drain3 masking rules, applied in order before template mining: a YAML list of "
        "`{name: NUM, pattern: '...'}` entries (a Python regex; matches become <NUM>). None: the built-in rules, "
        "also shipped as configs/masking/default.yaml. The miner state keeps the rules it was fitted with.",
    )
    drain_fit_lines: int | None = Field(
        1_000_000,
        ge=1,
        description="Learn drain3 templates from the first N good lines only (the rest of the input is not read for "
        "this), then match every line in parallel with the frozen miner. None: learn from every line (drain learning "
        "is sequential: a whole extra pass through the driver). Lines of templates the first N never showed are "
        "matched as unseen (summary: unmatched_lines); `bench/ingest.py --agreement` measures the trade-off.",
    )
    match_workers: int = Field(
        2,
        ge=1,
        description="Parallel workers matching lines against the frozen miner: for text logs, shard tasks that "
        "each read, parse, match, cut windows and write prompt rows; for blocks and templates, matcher actors.",
    )
    match_cache_size: int = Field(
        1 << 17,
        ge=0,
        description="Contents each matcher worker remembers (LRU; exact: the miner is frozen). 0: no cache. Hit rate "
        "is how often a content repeats verbatim: 32% of the bundled BGL_2k lines, 8% of the HDFS sample's.",
    )
    output_dir: str = Field("runs/quickstart/data", description="Prompts, miner state and dead letters go here.")

    @model_validator(mode="after")
    def _templates_have_no_time_order(self) -> DataConfig:
        if self.format == TEMPLATES_FORMAT and self.split == "chronological":
            raise ValueError("format templates has no time order: set data.split: stratified")
        if (self.format == REGEX_FORMAT) != (self.regex is not None):
            raise ValueError("data.regex is the line regex of format regex: set both or neither")
        if self.teacher.kind == "rlog" and self.format != TEMPLATES_FORMAT:
            raise ValueError(
                f"data.teacher.kind rlog explains single templates: it needs format templates, not {self.format}"
            )
        if (
            self.session == "time"
            and self.regex is not None
            and "timestamp" not in re.compile(self.regex.line).groupindex
        ):
            raise ValueError("data.session time needs time stamps: data.regex.line has no `timestamp` group")
        if (
            self.split == "stratified"
            and self.format not in (TEMPLATES_FORMAT, *BLOCK_FORMATS)
            and self.session == "fixed"
        ):
            raise ValueError(
                f"data.split stratified needs every label before the split; {self.format} windows stream in time "
                "order and are split chronologically (set data.split: chronological)"
            )
        if self.split == "template_holdout" and (self.format in BLOCK_FORMATS or self.session == "time"):
            raise ValueError(
                "data.split template_holdout works on fixed windows and template sets; block and time sessions "
                "take chronological or stratified"
            )
        if self.validation_draw == "spread" and self.split != "chronological":
            raise ValueError(
                f"data.validation_draw spread applies to split chronological; {self.split} already draws its "
                "validation sessions across the data (leave validation_draw: latest)"
            )
        if self.label_patch and self.format != TEMPLATES_FORMAT:
            raise ValueError(f"data.label_patch corrects template labels: it needs format templates, not {self.format}")
        return self

    @model_validator(mode="after")
    def _masking_file_loads(self) -> DataConfig:
        masking_rules(self.masking_file)  # errors name data.masking_file, the file and the entry
        return self
