"""Typed settings for reading logs and building prompts (the `data` section of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

DataFormat = Literal["bgl", "thunderbird", "spirit", "hdfs", "loglead_hdfs", "templates"]
BLOCK_FORMATS = ("hdfs", "loglead_hdfs")  # labelled per block (session), never per line


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
        "(1 = abnormal), one single-line session per row.",
    )
    labels_path: str | None = Field(
        None,
        validation_alias=AliasChoices("labels_path", "hdfs_labels_path"),
        description="Per-block labels for hdfs/loglead_hdfs: CSV `BlockId,Label` or `seq_id,Label`, "
        "Label Normal|Anomaly (`hdfs_labels_path` is accepted as the old name).",
    )
    session: Literal["fixed", "block"] = Field(
        "fixed", description="fixed line windows, or block sessions (hdfs/loglead_hdfs); templates ignore it."
    )
    label_patch: str | None = Field(
        None,
        description="templates only: a JSON label patch (RationAnomaly's `rationanomaly_anomaly_patch.json` "
        "format: records with `input` template text and `rectified` normal|abnormal) applied by exact text "
        "match when the CSVs are read; summary.json reports labels changed and entries that matched nothing.",
    )
    window_size: int = Field(20, ge=1, description="Lines per fixed window.")
    split: Literal["chronological", "stratified"] = Field(
        "chronological",
        description="chronological: earliest sessions train; stratified: seeded split per label "
        "(required for templates, which have no time order).",
    )
    seed: int = Field(0, description="Seed of the stratified split.")
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
    shard_bytes: int = Field(8 << 20, ge=1024, description="Byte range per Ray Data read task.")
    drain_sim_threshold: float = Field(0.4, gt=0, lt=1, description="drain3 similarity threshold.")
    drain_depth: int = Field(4, ge=3, description="drain3 parse-tree depth.")
    match_workers: int = Field(2, ge=1, description="Ray Data actors matching lines against the frozen miner.")
    output_dir: str = Field("runs/quickstart/data", description="Prompts, miner state and dead letters go here.")

    @model_validator(mode="after")
    def _templates_have_no_time_order(self) -> DataConfig:
        if self.format == "templates" and self.split == "chronological":
            raise ValueError("format templates has no time order: set data.split: stratified")
        if self.label_patch and self.format != "templates":
            raise ValueError(f"data.label_patch corrects template labels: it needs format templates, not {self.format}")
        return self
