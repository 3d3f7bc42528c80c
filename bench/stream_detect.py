"""Bench: a long BGL stream through `logrl tail` against a local server: events/s, time to verdict, recall, precision.

Arms, in one run on the same stream: classical-only (the cascade's first stage decides everything: a suspicious
window is called anomalous, no server), cascade (the first stage in the tail clears what it can, the model on a
local Serve app judges the rest, fast mode), cascade with known anomalies decided by the first stage too, and
model-only (every window to the model). The baseline for the ratios is model-only, measured in the same run.

The stream: the held-out part of the bundled BGL sample (the lines after the training split, chronological),
replayed until `--lines` lines; the first replay is the test split verbatim, later ones have the digits of every
numeric token redrawn (times, dates, counts, addresses, ids made of digits: no replay repeats a line verbatim, so
no cache sees a line twice; names such as `bglio388` or paths keep theirs). It is written without the label
column, as a live log; labels stay here. A window is anomalous when one of its lines
carries an alert label. Classical-only reads `--lines` lines; the arms that call the model read the first
`--model-lines` (every suspicious window costs a generation).

Needs a trained run: `make quickstart` (or `logrl train`), then
    python bench/stream_detect.py --config configs/quickstart.yaml --out docs/results/stream
Asserts nothing; prints a table and writes report.md and results.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from serving.cascade import ANOMALOUS, MODEL, LinesStage, StageDecision  # noqa: E402
from serving.tail import TailSettings, tail  # noqa: E402

BGL_SAMPLE = REPO_ROOT / "data" / "bgl" / "BGL_2k.log"
NUMERIC_TOKEN = re.compile(r"(?<!\S)[-+]?[\d.:,]*\d[\d.:,]*(?!\S)")  # 1117838570, 2005.06.03, 10.0.0.1:80


def redraw(token: str, rng: random.Random) -> str:
    return re.sub(r"\d", lambda _: str(rng.randrange(10)), token)


def build_stream(path: Path, train_fraction: float, window: int, lines: int, seed: int = 0) -> tuple[Path, list[bool]]:
    """Write the stream (live lines, no label column) next to `path`; return it and each line's alert flag."""
    raw = [line for line in BGL_SAMPLE.read_text(encoding="utf-8").split("\n") if line]
    n_windows = len(raw) // window
    first_test = round(n_windows * train_fraction) * window
    held_out = raw[first_test : n_windows * window]
    rng = random.Random(seed)
    labels: list[bool] = []
    with path.open("w", encoding="utf-8") as out:
        replay = 0
        while len(labels) < lines:
            for line in held_out[: lines - len(labels)]:
                label, live = line.split(None, 1)
                if replay:
                    live = NUMERIC_TOKEN.sub(lambda token: redraw(token.group(0), rng), live)
                out.write(live + "\n")
                labels.append(label != "-")
            replay += 1
    return path, labels


class ClassicalOnly:
    """The first stage deciding alone: what it would pass to the model is called anomalous."""

    def __init__(self, stage: LinesStage):
        self.stage = stage

    def judge(self, raw_lines):
        decision = self.stage.judge(raw_lines)
        return StageDecision(ANOMALOUS, decision.reason) if decision.decision == MODEL else decision


def run_arm(
    name, stream: Path, labels: list[bool], url: str, first_stage, window: int, concurrency: int, state: Path, test: int
):
    """Tail the stream once; return events/s, verdict latencies, and the confusion counts per window."""
    cut_at: dict[int, float] = {}
    verdicts: dict[int, bool] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def on_window(window_obj) -> None:
        cut_at[window_obj.first_line] = time.perf_counter()

    def emit(record: dict) -> None:
        now = time.perf_counter()
        first, last = (int(part[1:]) for part in record["lines"].split("-"))
        start = (first - 1) // window * window + 1  # the window it came from (a split part starts inside it)
        with lock:
            if "error" in record:
                print(f"  {name}: {record}", flush=True)
                return
            verdicts[start] = verdicts.get(start, False) or record.get("verdict") == "anomalous"
            if last == min(start + window - 1, len(labels)) and start in cut_at:  # the window's last part
                latencies.append(now - cut_at[start])

    shutil.rmtree(state, ignore_errors=True)  # no saved position from an earlier run
    settings = TailSettings(
        window_lines=window,
        concurrency=concurrency,
        follow=False,
        flush_after_s=0.5,
        show_all=True,
        state_dir=state,
        max_spooled=4 * concurrency,
    )
    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = tail(str(stream), url, settings, emit, first_stage=first_stage, on_window=on_window)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    truth = {start: any(labels[start - 1 : start - 1 + window]) for start in range(1, len(labels) + 1, window)}
    return {
        "arm": name,
        "lines": summary.lines,
        "wall_s": round(wall, 2),
        "events_per_s": round(summary.lines / wall, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # the box's, before and after
        "tail_cpu_s": round(cpu, 2),  # this process only: the tail's own cost, whatever else the box runs
        "events_per_tail_cpu_s": round(summary.lines / cpu, 1) if cpu else None,
        "windows": len(truth),
        "to_model": summary.windows - summary.classical,
        "p50_verdict_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p99_verdict_ms": round(1000 * sorted(latencies)[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "undetermined": summary.undetermined,
        "retries": summary.retries,
        **confusion(truth, verdicts),
        "test_split": confusion({s: a for s, a in truth.items() if s <= test}, verdicts),
    }


def confusion(truth: dict[int, bool], predicted: dict[int, bool]) -> dict:
    tp = sum(truth[s] and predicted.get(s, False) for s in truth)
    fp = sum(not truth[s] and predicted.get(s, False) for s in truth)
    fn = sum(truth[s] and not predicted.get(s, False) for s in truth)
    recall = tp / (tp + fn) if tp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "recall": round(recall, 3), "precision": round(precision, 3)}


def table(results: list[dict]) -> str:
    base = next(r for r in results if r["arm"] == "model-only")
    rows = [
        "| arm | lines | events/s | x model-only | events per tail CPU-s | windows to model | p50 / p99 time to "
        "verdict (ms) | recall | precision | test-split recall / precision | box load |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in results:
        split = r["test_split"]
        rows.append(
            f"| {r['arm']} | {r['lines']:,} | {r['events_per_s']:,.0f} "
            f"| {r['events_per_s'] / base['events_per_s']:.1f} | {r['events_per_tail_cpu_s']:,.0f} "
            f"| {r['to_model']:,} of {r['windows']:,} | {r['p50_verdict_ms']} / {r['p99_verdict_ms']} "
            f"| {r['recall']} | {r['precision']} | {split['recall']} / {split['precision']} "
            f"| {r.get('load_average', ['?', '?'])[0]} -> {r.get('load_average', ['?', '?'])[1]} |"
        )
    return "\n".join(rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml", help="the trained run's config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--lines", type=int, default=1_000_000, help="stream length for the classical and cascade arms")
    parser.add_argument("--model-lines", type=int, default=6_000, help="stream length for model-only")
    parser.add_argument("--concurrency", type=int, default=8, help="tail's senders")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "runs" / "stream-bench")
    parser.add_argument("--out", type=Path, help="folder for report.md and results.json")
    args = parser.parse_args()

    from cluster.config import load_config
    from cluster.environment import apply_defaults
    from cluster.stages import ensure_data, start_serving
    from serving.launch import stop_detector

    overrides = [*args.set, f"serve.port={free_port()}", "serve.auth=disabled", "serve.cascade=false"]
    cfg = load_config(args.config, overrides)
    apply_defaults(cfg)
    ensure_data(cfg)  # also fits the first stage if this run predates it
    window = cfg.data.window_size
    args.work.mkdir(parents=True, exist_ok=True)
    stream, labels = build_stream(args.work / "stream.log", cfg.data.train_fraction, window, args.lines)
    short, short_labels = build_stream(
        args.work / "stream-short.log", cfg.data.train_fraction, window, args.model_lines
    )
    test_lines = round(2000 // window * (1 - cfg.data.train_fraction)) * window  # one replay: the test split
    stage = LinesStage.from_data_dir(cfg.data.output_dir)
    known = LinesStage.from_data_dir(cfg.data.output_dir, decide_known_anomalies=True)
    print(f"stream: {len(labels):,} lines ({sum(labels):,} with an alert label), windows of {window}", flush=True)

    def arm(name, path, truth, first_stage, url, concurrency, index):
        result = run_arm(name, path, truth, url, first_stage, window, concurrency, args.work / f"s{index}", test_lines)
        print(json.dumps(result), flush=True)
        return result

    results = [arm("classical-only", stream, labels, ClassicalOnly(stage), "http://unused", 1, 0)]
    detector = start_serving(cfg)
    try:
        results.append(arm("cascade", short, short_labels, stage, detector.url, args.concurrency, 1))
        results.append(
            arm("cascade, known anomalies classical", short, short_labels, known, detector.url, args.concurrency, 2)
        )
        results.append(arm("model-only", short, short_labels, None, detector.url, args.concurrency, 3))
    finally:
        stop_detector(detector)
    report = table(results)
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "report.md").write_text(
            f"# `bench/stream_detect.py`\n\n`{' '.join(sys.argv)}`\n\nStream: {len(labels):,} lines, "
            f"{sum(labels):,} with an alert label; the arms that call the model on the first {len(short_labels):,}. "
            f"Baseline: model-only, same run.\n\n{report}\n"
        )


if __name__ == "__main__":
    main()
