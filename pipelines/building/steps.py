"""What both ways of building sessions share (in the driver or streamed by blocks): the miner fit and the report."""

from __future__ import annotations

from dataclasses import dataclass

import ray

from pipelines.config import DataConfig
from pipelines.templates.masking import masking_rules
from pipelines.templates.miner import LogTemplateMiner, mask_contents


def fit_miner(lines: ray.data.Dataset, cfg: DataConfig) -> LogTemplateMiner:
    """Fit drain3 on the good lines' contents (all, or the first `drain_fit_lines`), streamed in log order: the
    read tasks mask them in parallel, the driver only learns (drain learning is sequential)."""
    masking = masking_rules(cfg.masking_file)
    masked = lines.map_batches(mask_contents, fn_kwargs={"masking": masking}, batch_format="pyarrow", batch_size=None)
    if cfg.drain_fit_lines is not None:
        masked = masked.limit(cfg.drain_fit_lines)
    contents = (
        text for block in masked.iter_batches(batch_format="pyarrow", batch_size=None) for text in block[0].to_pylist()
    )
    settings = {"sim_threshold": cfg.drain_sim_threshold, "depth": cfg.drain_depth, "masking": masking}
    return LogTemplateMiner.fit_masked(contents, **settings)


@dataclass
class Built:
    """What either way of building sessions reports back for the summary and the prompt settings."""

    good_lines: int
    dead_letters: dict[str, int]
    templates: int
    drain_fit_lines: int
    unmatched_lines: int
    splits: dict
    unlabelled_sessions: int = 0
    indicative: dict[int, str] | None = None
    expected: dict[int, str] | None = None
    seconds: dict[str, float] | None = None  # per stage of the streaming build: fit, plan, shards
