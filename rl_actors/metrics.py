"""Per-step metrics: one printed line, a JSONL record, TensorBoard scalars and, when configured, MLflow."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rl_actors.tracking import MlflowRun


def _is_at_or_after(line: str, stage: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return True  # a line cut short by a kill
    return record.get("stage") == stage and record.get("step", -1) >= step


class MetricsLogger:
    """Writes every step's metrics to `<dir>/metrics.jsonl`, TensorBoard under `<dir>/tensorboard` and, given an
    MLflow run, to it as `<stage>/<metric>`."""

    def __init__(self, out_dir: str | Path, stage: str, mlflow: MlflowRun | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.jsonl_path = self.dir / "metrics.jsonl"
        self.tensorboard_dir = self.dir / "tensorboard" / stage
        self.writer = SummaryWriter(str(self.tensorboard_dir))
        self.mlflow = mlflow

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record one step (non-numeric values go to JSONL only)."""
        record = {"stage": self.stage, "step": step, **metrics}
        with self.jsonl_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            if isinstance(value, int | float):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()
        if self.mlflow is not None:
            from rl_actors.tracking import numeric_metrics

            self.mlflow.log_metrics(step, numeric_metrics(metrics, self.stage))
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))
        print(f"[{self.stage} {step}] {shown}", flush=True)

    def drop_from(self, step: int) -> int:
        """Forget this stage's records of `step` and later (a resumed run redoes them); returns how many."""
        if not self.jsonl_path.exists():
            return 0
        lines = self.jsonl_path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not _is_at_or_after(line, self.stage, step)]
        tmp = self.jsonl_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.jsonl_path)
        return len(lines) - len(kept)

    def log_artifacts(self, folder: str | Path, name: str) -> None:
        """Attach a folder (an adapter, a report) to the MLflow run, if there is one."""
        if self.mlflow is not None:
            self.mlflow.log_artifacts(folder, name)

    def close(self) -> None:
        self.writer.close()
        if self.mlflow is not None:
            self.mlflow.finish()


@contextmanager
def timed(metrics: dict[str, float], key: str):
    """Add the block's wall-clock seconds to `metrics[key]`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics[key] = metrics.get(key, 0.0) + time.perf_counter() - started


def mean_over_ranks(results: list[dict[str, float]]) -> dict[str, float]:
    """Each key's mean over the ranks that report it (a rank with an empty shard reports no loss)."""
    keys = dict.fromkeys(key for result in results for key in result)
    return {key: sum(r[key] for r in results if key in r) / sum(key in r for r in results) for key in keys}
