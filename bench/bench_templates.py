"""Bench: plain single-process drain3 vs logrl's frozen, parallel template matching over Ray Data.

    python bench/bench_templates.py --copies 50

The corpus is the bundled BGL sample repeated --copies times. Both sides read and parse the file; the baseline
then mines with drain3's TemplateMiner.add_log_message in one process (the usual way to run drain3), logrl
matches every line against a miner fitted once on the sample, in Ray Data actors.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from drain3 import TemplateMiner  # noqa: E402
from drain3.template_miner_config import TemplateMinerConfig  # noqa: E402

from pipelines.building.dataset import match_templates  # noqa: E402
from pipelines.config import DataConfig  # noqa: E402
from pipelines.reading.log_formats import parse_line  # noqa: E402
from pipelines.reading.read_logs import check_inputs, good_lines, parsed_lines  # noqa: E402
from pipelines.templates.miner import LogTemplateMiner  # noqa: E402

SAMPLE = ROOT / "data" / "bgl" / "BGL_2k.log"


def replicate(copies: int, folder: Path) -> tuple[Path, int]:
    """Write the sample `copies` times into one file; returns the path and its line count."""
    sample = SAMPLE.read_bytes().rstrip(b"\r\n") + b"\r\n"
    path = folder / f"BGL_x{copies}.log"
    path.write_bytes(sample * copies)
    return path, sample.count(b"\n") * copies


def plain_drain3(path: Path) -> float:
    """Baseline: read, parse, and mine every line with an out-of-the-box drain3 TemplateMiner, one process."""
    config = TemplateMinerConfig()  # built in code so no drain3.ini is looked up
    miner = TemplateMiner(config=config)
    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        for text in f:
            miner.add_log_message(parse_line(text, "bgl")["content"])
    return time.perf_counter() - start


def frozen_single_process(path: Path, miner: LogTemplateMiner) -> float:
    """Reference: logrl's frozen matching without Ray."""
    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        for text in f:
            miner.match(parse_line(text, "bgl")["content"])
    return time.perf_counter() - start


def ray_pipeline(path: Path, state_path: Path, out: Path, workers: int, shard_bytes: int) -> tuple[float, int]:
    """logrl: sharded read + parse + frozen matching in `workers` actors, streamed to the driver."""
    cfg = DataConfig(paths=[str(path)], output_dir=str(out), shard_bytes=shard_bytes, match_workers=workers)
    start = time.perf_counter()
    lines = good_lines(parsed_lines(cfg, check_inputs(cfg)))
    matched = match_templates(lines, state_path, cfg)
    count = sum(batch.num_rows for batch in matched.iter_batches(batch_format="pyarrow", batch_size=None))
    return time.perf_counter() - start, count


def report(name: str, seconds: float, n_lines: int) -> None:
    print(f"{name:<58} {n_lines / seconds:>10.0f} lines/s ({seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=200, help="times the 2k-line BGL sample is repeated")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="CPUs given to local Ray")
    parser.add_argument("--workers", type=int, default=None, help="matching actors (default: --num-cpus)")
    parser.add_argument("--shard-bytes", type=int, default=8 << 20, help="byte range per read task")
    args = parser.parse_args()
    workers = args.workers or args.num_cpus

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from cluster.environment import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus, n_lines = replicate(args.copies, folder)
        print(f"corpus: {n_lines} lines ({corpus.stat().st_size / 1e6:.1f} MB), BGL sample x{args.copies}")

        start = time.perf_counter()
        miner = LogTemplateMiner.fit(parse_line(text, "bgl")["content"] for text in SAMPLE.read_text().split("\n"))
        state = miner.save(folder / "miner_state.json")
        fit_s = time.perf_counter() - start
        print(f"logrl miner fitted once on the 2k sample: {miner.n_templates} templates, {fit_s:.2f} s")

        baseline = plain_drain3(corpus)
        report("baseline: plain drain3 add_log_message, 1 process", baseline, n_lines)
        report("reference: logrl frozen match, 1 process, no Ray", frozen_single_process(corpus, miner), n_lines)

        init_ray(None, args.num_cpus, log_to_driver=False)
        ray_pipeline(corpus, state, folder / "warmup", workers, args.shard_bytes)  # start workers before timing
        elapsed, count = ray_pipeline(corpus, state, folder / "run", workers, args.shard_bytes)
        if count != n_lines:
            print(f"warning: the pipeline returned {count} lines, expected {n_lines}")
        report(f"logrl: Ray Data read+parse+frozen match, {workers} actors", elapsed, n_lines)
        print(f"ratio logrl / baseline (lines/s): {baseline / elapsed:.2f}x on {args.num_cpus} CPUs")
        ray.shutdown()


if __name__ == "__main__":
    main()
