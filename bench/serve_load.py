"""Bench: /detect latency percentiles, req/s and errors vs concurrency, fast (answer-first) mode vs reasoning mode.

The baseline is reasoning mode, measured in the same run on the same windows; fast mode's p50 and throughput are
printed as ratios against it at each concurrency. Asserts nothing. Writes a table, a JSON file and a PNG curve.

Against a running app:   python bench/serve_load.py --url http://127.0.0.1:8000
Or start one for the run: python bench/serve_load.py --start --model M --adapter A --miner MINER.json
  (after `make quickstart`: --start --config configs/quickstart.yaml serves its model, latest adapter and miner)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

REPO_ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from serving.client import auth_headers  # noqa: E402  (after the repo root is on sys.path)

DEFAULT_LOG = Path(REPO_ROOT) / "data" / "bgl" / "BGL_2k.log"
MODES = ("reason", "fast")


def sessions(path: Path, window: int, count: int) -> list[list[str]]:
    """`count` consecutive windows of `window` raw lines, cycling through the file."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line]
    starts = range(0, max(1, len(lines) - window), window)
    return [lines[starts[i % len(starts)] : starts[i % len(starts)] + window] for i in range(count)]


async def run_point(url: str, work: list[list[str]], fast: bool, concurrency: int, timeout: float) -> dict:
    """Send every window once with at most `concurrency` in flight; latencies of 200s, counts of everything else."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    statuses: Counter = Counter()
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=auth_headers()) as client:

        async def one(lines: list[str]) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(f"{url}/detect", json={"lines": lines, "fast": fast})
                    status = response.status_code
                except httpx.HTTPError as err:
                    status = type(err).__name__
                statuses[status] += 1
                if status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)

        await one(work[0])  # warm-up, not counted
        statuses.clear()
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(lines) for lines in work))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "mode": "fast" if fast else "reason",
        "concurrency": concurrency,
        "n": len(work),
        "ok": len(latencies),
        "errors": {str(k): v for k, v in statuses.items() if k != 200},
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "rps": len(latencies) / wall,
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def table(points: list[dict]) -> str:
    by_key = {(p["mode"], p["concurrency"]): p for p in points}
    rows = [
        "| clients | mode | ok/n | non-2xx | p50 ms | p90 ms | p99 ms | req/s | p50 lower than reason x | req/s x |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in points:
        base = by_key[("reason", point["concurrency"])]
        errors = sum(point["errors"].values())
        ratios = f"| {base['p50_ms'] / point['p50_ms']:.2f} | {point['rps'] / base['rps']:.2f} |"  # reason: 1.00
        rows.append(
            f"| {point['concurrency']} | {point['mode']} | {point['ok']}/{point['n']} | {errors} "
            f"| {point['p50_ms']:.0f} | {point['p90_ms']:.0f} | {point['p99_ms']:.0f} | {point['rps']:.1f} {ratios}"
        )
    return "\n".join(rows)


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, color in zip(MODES, ("tab:blue", "tab:orange"), strict=True):
        rows = [p for p in points if p["mode"] == mode]
        levels = [p["concurrency"] for p in rows]
        latency.plot(levels, [p["p50_ms"] for p in rows], "o-", color=color, label=f"{mode} p50")
        latency.plot(levels, [p["p99_ms"] for p in rows], "o--", color=color, alpha=0.6, label=f"{mode} p99")
        throughput.plot(levels, [p["rps"] for p in rows], "o-", color=color, label=mode)
    for axis, label in ((latency, "latency (ms)"), (throughput, "requests/s")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    latency.set_yscale("log")
    figure.suptitle("/detect under load: fast (answer-first) vs reasoning mode")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def start_app(args: argparse.Namespace):

    from cluster.environment import init_ray
    from serving.config import ServeConfig
    from serving.launch import run_detector

    if args.config:  # everything the training run used: base model, latest adapter, miner, prompt budget
        from cluster.config import load_config
        from cluster.stages import detector_args

        cfg, model, adapter, miner, data_format, max_prompt_tokens, regex = detector_args(
            load_config(args.config, args.set)
        )
    else:
        cfg, model, adapter, miner = ServeConfig(max_model_len=768), args.model, args.adapter, args.miner
        data_format, max_prompt_tokens, regex = args.format, args.max_prompt_tokens, None
    cfg = cfg.model_copy(update={"port": args.port, "auth": "disabled"})  # loopback-only bench run
    # A cluster closed as logrl's own (every port on loopback, token auth); replica access logs would bury the table.
    init_ray(None, args.num_cpus, log_to_driver=False)
    running = run_detector(cfg, model, adapter, miner, data_format, max_prompt_tokens, regex)
    print(f"started in {running.startup_s:.1f}s: {running.adapter.name} {running.adapter.version} on {running.url}")
    print(
        f"limits on: max_ongoing_requests {cfg.max_ongoing_requests}, max_queued_requests {cfg.max_queued_requests}, "
        f"request_timeout_s {cfg.request_timeout_s:g}, body cap {cfg.max_request_bytes} bytes, "
        f"max_new_tokens {cfg.max_new_tokens}"
    )
    return running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=200, help="requests per mode and concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--window", type=int, default=20, help="raw lines per request")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help="raw log file (BGL format by default)")
    parser.add_argument("--timeout", type=float, default=180, help="client timeout per request (s)")
    parser.add_argument("--out", type=Path, help="folder for load.json, load.md and load.png")
    parser.add_argument("--start", action="store_true", help="start the app here (Ray + Serve), stop it after")
    parser.add_argument("--config", help="with --start: serve what this training config trained (e.g. quickstart)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--model")
    parser.add_argument("--adapter")
    parser.add_argument("--miner")
    parser.add_argument("--format", default="bgl")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-prompt-tokens", type=int, default=400)
    parser.add_argument("--num-cpus", type=int, default=8)
    args = parser.parse_args()

    work = sessions(args.log, args.window, args.n)
    running = start_app(args) if args.start else None
    url = running.url if running else args.url
    points = []
    try:
        print(f"/detect at {url}: {args.n} windows of {args.window} lines per mode and level; baseline: reason mode")
        for concurrency in args.concurrency:
            for mode in MODES:
                point = asyncio.run(run_point(url, work, mode == "fast", concurrency, args.timeout))
                points.append(point)
                print(
                    f"  c={concurrency:<3} {mode:<6} ok {point['ok']}/{point['n']} errors {point['errors'] or 0} "
                    f"p50 {point['p50_ms']:.0f} ms p99 {point['p99_ms']:.0f} ms {point['rps']:.1f} req/s",
                    flush=True,
                )
    finally:
        if running is not None:
            import ray

            from serving.launch import stop_detector

            stop_detector(running)
            ray.shutdown()
    print("\n" + table(points))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "load.json").write_text(json.dumps({"args": _args(args), "points": points}, indent=2) + "\n")
        (args.out / "load.md").write_text(table(points) + "\n")
        plot(points, args.out / "load.png")
        print(f"wrote {args.out}/load.json, load.md, load.png")


def _args(args: argparse.Namespace) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


if __name__ == "__main__":
    main()
