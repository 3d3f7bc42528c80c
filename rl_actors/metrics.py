"""Per-step metrics: one printed line, a JSONL record, and TensorBoard scalars."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path


class MetricsLogger:
    """Writes every step's metrics to `<dir>/metrics.jsonl` and TensorBoard under `<dir>/tensorboard`."""

    def __init__(self, out_dir: str | Path, stage: str):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.jsonl_path = self.dir / "metrics.jsonl"
        self.tensorboard_dir = self.dir / "tensorboard" / stage
        self.writer = SummaryWriter(str(self.tensorboard_dir))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record one step (non-numeric values go to JSONL only)."""
        record = {"stage": self.stage, "step": step, **metrics}
        with self.jsonl_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            if isinstance(value, int | float):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))
        print(f"[{self.stage} {step}] {shown}", flush=True)

    def close(self) -> None:
        self.writer.close()


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
