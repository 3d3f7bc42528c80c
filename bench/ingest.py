"""Bench: logrl's whole data pipeline against plain single-process drain3, lines/s and the driver's peak RSS.

    python bench/ingest.py --lines 250000,1000000,4000000

The corpus is the bundled BGL sample repeated to each size. Each measurement runs in a fresh process so its peak
RSS (ru_maxrss) is its own:
  baseline: read, parse and mine every line with an out-of-the-box drain3 TemplateMiner (no masking rules, drain3's
            default; `--mask` also runs it with logrl's masking rules), one process;
  logrl:    `build_prompt_dataset` (Ray Data read with dead letters, parse, drain3 fit, parallel frozen match,
            sessions, split, prompts, teacher rationales, report) on a local Ray with `--cpus` CPUs.
Prints lines/s of each, the ratio (above 1: logrl is faster) and the driver's peak RSS per size: a driver that
streams stays flat as the corpus grows. `--fit-lines N` runs logrl with `data.drain_fit_lines: N`. `--no-cache` adds
a logrl run without the template-match cache: the repeated sample repeats every content, real logs do not.

    python bench/ingest.py --agreement 250,1000,10000

prints, for the bundled BGL and HDFS samples, how many lines get the same template from drain3 fitted on the first
N lines (then frozen, as the pipeline matches) as from a fit on every line, and how many stay unseen.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "bgl" / "BGL_2k.log"


def corpus(lines: int, folder: Path) -> Path:
    """The sample repeated (and cut) to exactly `lines` lines."""
    sample = SAMPLE.read_bytes().rstrip(b"\r\n").split(b"\n")
    copies, rest = divmod(lines, len(sample))
    path = folder / f"BGL_{lines}.log"
    with open(path, "wb") as handle:
        block = b"\n".join(sample) + b"\n"
        for _ in range(copies):
            handle.write(block)
        handle.write(b"".join(line + b"\n" for line in sample[:rest]))
    return path


def baseline(path: str, mask: bool) -> dict:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    from pipelines.reading.log_formats import parse_line

    config = TemplateMinerConfig()  # built in code: no drain3.ini is looked up
    if mask:
        from drain3.masking import MaskingInstruction

        from pipelines.templates.miner import DEFAULT_MASKING

        config.masking_instructions = [MaskingInstruction(pattern, name) for name, pattern in DEFAULT_MASKING]
    miner = TemplateMiner(config=config)
    started = time.perf_counter()
    n = 0
    with open(path, encoding="utf-8") as handle:
        for text in handle:
            miner.add_log_message(parse_line(text, "bgl")["content"])
            n += 1
    return {"seconds": time.perf_counter() - started, "lines": n, "templates": len(miner.drain.clusters)}


def agreement(fit_sizes: list[int]) -> None:
    """Template agreement of bounded drain3 fits with a full sequential fit, on the bundled samples."""
    import pyarrow.parquet as pq

    from pipelines.reading.log_formats import parse_line
    from pipelines.templates.miner import UNSEEN_ID, LogTemplateMiner

    bgl = [parse_line(text, "bgl")["content"] for text in SAMPLE.read_text().splitlines()]
    events = pq.read_table(ROOT / "data" / "hdfs_loglead" / "hdfs_events_2percent.parquet").sort_by("m_timestamp")
    corpora = {"BGL 2k": bgl, "HDFS (LogLead 2%)": events.column("m_message").to_pylist()}
    print(f"{'corpus':<18} {'lines':>7} {'fit lines':>9} {'templates':>9} {'same template':>13} {'unseen':>7}")
    for name, contents in corpora.items():
        full = LogTemplateMiner.fit(contents)
        reference = [full.match(content)[1] for content in contents]
        print(f"{name:<18} {len(contents):>7} {'all':>9} {full.n_templates:>9} {1:>13.2%} {0:>7.2%}")
        for size in (n for n in fit_sizes if n < len(contents)):
            bounded = LogTemplateMiner.fit(contents[:size])
            matched = [bounded.match(content) for content in contents]
            same = sum(template == ref for (_, template), ref in zip(matched, reference)) / len(contents)
            unseen = sum(template_id == UNSEEN_ID for template_id, _ in matched) / len(contents)
            print(f"{name:<18} {len(contents):>7} {size:>9} {bounded.n_templates:>9} {same:>13.2%} {unseen:>7.2%}")


def pipeline(
    path: str, cpus: int, out: str, fit_lines: int | None = None, full_fit: bool = False, match_cache: bool = True
) -> dict:
    from cluster.environment import apply_defaults, init_ray
    from pipelines.building.dataset import build_prompt_dataset
    from pipelines.config import DataConfig

    apply_defaults()
    init_ray(None, cpus)
    cfg = DataConfig(paths=[path], format="bgl", window_size=20, train_fraction=0.7, output_dir=out)
    if fit_lines or full_fit:
        cfg.drain_fit_lines = fit_lines  # None: learn from every line
    if not match_cache:
        cfg.match_cache_size = 0
    started = time.perf_counter()
    summary = build_prompt_dataset(cfg)
    return {"seconds": time.perf_counter() - started, "lines": summary["good_lines"], "templates": summary["templates"]}


class MemoryPeaks:
    """Polls this process's anonymous (heap) and shared-memory RSS, and how much of /dev/shm (where Ray's object
    store lives on Linux) is in use beyond what it was at the start; keeps the peaks, in MB."""

    def __init__(self, interval_s: float = 0.2):
        self.peaks = {"heap_mb": 0.0, "shm_mapped_mb": 0.0, "dev_shm_mb": 0.0}
        self._shm_start = shutil.disk_usage("/dev/shm").used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval_s,), daemon=True)
        self._thread.start()

    def _poll(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
            now = {
                "heap_mb": int(status["RssAnon"].split()[0]) / 1024,
                "shm_mapped_mb": int(status["RssShmem"].split()[0]) / 1024,
                "dev_shm_mb": (shutil.disk_usage("/dev/shm").used - self._shm_start) / 2**20,
            }
            self.peaks = {key: max(value, now[key]) for key, value in self.peaks.items()}

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return self.peaks


def child(args) -> None:
    """One measurement in this process; prints a JSON line with its own peak RSS (and its parts)."""
    sys.path.insert(0, str(ROOT))
    peaks = MemoryPeaks()
    if args.which.startswith("logrl"):
        fit_lines = None if args.full_fit else args.fit_lines
        result = pipeline(args.path, args.cpus, args.out, fit_lines, args.full_fit, match_cache=args.which == "logrl")
    else:
        result = baseline(args.path, args.which == "drain3+mask")
    result |= peaks.stop()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def measure(which: str, path: Path, cpus: int, out: Path, fit_lines: int | None, full_fit: bool) -> dict:
    command = [sys.executable, __file__, "--child", which, "--path", str(path), "--cpus", str(cpus), "--out", str(out)]
    command += ["--fit-lines", str(fit_lines)] if fit_lines else []
    command += ["--full-fit"] if full_fit else []
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{which} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default="250000,1000000", help="corpus sizes, comma-separated")
    parser.add_argument("--cpus", type=int, default=8, help="logical CPUs of the local Ray")
    parser.add_argument("--mask", action="store_true", help="also run drain3 with logrl's masking rules")
    parser.add_argument(
        "--fit-lines", type=int, help="logrl learns drain3 templates from the first N lines (default: the config's)"
    )
    parser.add_argument("--full-fit", action="store_true", help="logrl learns drain3 templates from every line")
    parser.add_argument("--agreement", help="fit sizes, comma-separated: template agreement with a full fit")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="also run logrl with data.match_cache_size 0: the repeated corpus makes the match cache hit ~100%%, "
        "real logs far less (32%% of BGL_2k's lines repeat verbatim)",
    )
    parser.add_argument("--child", choices=["drain3", "drain3+mask", "logrl", "logrl-nocache"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.which = args.child
        child(args)
        return
    if args.agreement:
        sys.path.insert(0, str(ROOT))
        agreement([int(x) for x in args.agreement.split(",")])
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    kinds = ["drain3", *(["drain3+mask"] if args.mask else []), "logrl", *(["logrl-nocache"] if args.no_cache else [])]
    sys.path.insert(0, str(ROOT))
    from pipelines.config import DataConfig

    fit_lines = args.fit_lines or DataConfig.model_fields["drain_fit_lines"].default
    fit = "every line" if args.full_fit else f"the first {fit_lines} lines"
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {cores} usable cores; local Ray with {args.cpus} logical CPUs; logrl fits drain3 on {fit}")
    print(
        f"{'lines':>9} {'run':<12} {'seconds':>8} {'lines/s':>9} {'templates':>9} {'peak RSS MB':>11} "
        f"{'heap':>6} {'shm':>6} {'/dev/shm':>8} ratio vs drain3"
    )
    for size in [int(x) for x in args.lines.split(",")]:
        path = corpus(size, folder)
        out = folder / f"out-{size}"
        results = {kind: measure(kind, path, args.cpus, out, args.fit_lines, args.full_fit) for kind in kinds}
        base = results["drain3"]["lines"] / results["drain3"]["seconds"]
        for kind, r in results.items():
            rate = r["lines"] / r["seconds"]
            print(
                f"{size:>9} {kind:<12} {r['seconds']:8.1f} {rate:9.0f} {r['templates']:>9} "
                f"{r['peak_rss_mb']:11.0f} {r['heap_mb']:6.0f} {r['shm_mapped_mb']:6.0f} {r['dev_shm_mb']:8.0f} "
                f"{rate / base:.2f}x",
                flush=True,
            )
        path.unlink()


if __name__ == "__main__":
    main()
