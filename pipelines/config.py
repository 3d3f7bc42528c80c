"""Typed settings for reading logs and building prompts (the `data` section of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where the logs are and how they become labelled, prompt-ready sessions."""

    paths: list[str] = Field(description="Log files (plain or .gz), read in the order given.")
    format: Literal["bgl", "thunderbird", "spirit", "hdfs"] = Field(
        "bgl", description="Line format; bgl/thunderbird/spirit carry the alert label as first token."
    )
    hdfs_labels_path: str | None = Field(None, description="CSV BlockId,Label for HDFS block sessions.")
    session: Literal["fixed", "block"] = Field("fixed", description="fixed line windows or HDFS blocks.")
    window_size: int = Field(20, ge=1, description="Lines per fixed window.")
    train_fraction: float = Field(0.7, gt=0, lt=1, description="Chronological share of sessions for training.")
    max_prompt_lines: int = Field(40, ge=1, description="Rendered lines per prompt (runs of a template collapse).")
    shard_bytes: int = Field(8 << 20, ge=1024, description="Byte range per Ray Data read task.")
    drain_sim_threshold: float = Field(0.4, gt=0, lt=1, description="drain3 similarity threshold.")
    drain_depth: int = Field(4, ge=3, description="drain3 parse-tree depth.")
    match_workers: int = Field(2, ge=1, description="Ray Data actors matching lines against the frozen miner.")
    output_dir: str = Field("runs/quickstart/data", description="Prompts, miner state and dead letters go here.")
