"""Bench: /detect latency percentiles and throughput, fast (answer-first) mode vs reasoning mode (the baseline).

Against a running app:   python bench/bench_serve.py --url http://127.0.0.1:8000 [-n 20] [--concurrency 8]
Or start one for the run: python bench/bench_serve.py --start --model M --adapter A --miner MINER.json [--port 8000]
Prints numbers and the fast/reason ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from serving.client import auth_headers  # noqa: E402  (after the repo root is on sys.path)

DEFAULT_LOG = Path(REPO_ROOT) / "data" / "bgl" / "BGL_2k.log"


def sessions(path: Path, window: int, count: int) -> list[list[str]]:
    """`count` consecutive windows of `window` raw lines, cycling through the file."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line]
    starts = range(0, max(1, len(lines) - window), window)
    return [lines[starts[i % len(starts)] : starts[i % len(starts)] + window] for i in range(count)]


async def _one(client: httpx.AsyncClient, url: str, lines: list[str], fast: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    # $LOGRL_API_KEY (or the first of $LOGRL_API_KEYS) when the detector requires keys.
    response = await client.post(f"{url}/detect", json={"lines": lines, "fast": fast}, headers=auth_headers())
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, response.json()


async def run_mode(url: str, work: list[list[str]], fast: bool, concurrency: int) -> dict:
    """Send every session once with at most `concurrency` in flight; client latencies and wall time."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=600) as client:

        async def bounded(lines: list[str]) -> tuple[float, dict]:
            async with gate:
                return await _one(client, url, lines, fast)

        await _one(client, url, work[0], fast)  # warm-up, not counted
        started = time.perf_counter()
        results = await asyncio.gather(*(bounded(lines) for lines in work))
        wall = time.perf_counter() - started
    latencies = sorted(ms for ms, _ in results)
    return {
        "n": len(latencies),
        "p50": _percentile(latencies, 50),
        "p90": _percentile(latencies, 90),
        "p99": _percentile(latencies, 99),
        "mean": statistics.fmean(latencies),
        "server_mean": statistics.fmean(body["latency_ms"] for _, body in results),
        "rps": len(latencies) / wall,
        "well_formed": sum(body["well_formed"] for _, body in results) / len(results),
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def report(label: str, reason: dict, fast: dict) -> None:
    print(f"\n== {label} ==")
    print(f"{'mode':<16}{'n':>5}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'server ms':>11}{'req/s':>9}")
    for name, row in (("reason (base)", reason), ("fast", fast)):
        print(
            f"{name:<16}{row['n']:>5}{row['p50']:>10.1f}{row['p90']:>10.1f}{row['p99']:>10.1f}"
            f"{row['mean']:>10.1f}{row['server_mean']:>11.1f}{row['rps']:>9.2f}"
        )
    print(
        f"fast vs reason: p50 latency x{reason['p50'] / fast['p50']:.2f} lower, "
        f"throughput x{fast['rps'] / reason['rps']:.2f} higher"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=20, help="requests per mode and phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--window", type=int, default=20, help="raw lines per request")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help="raw log file (BGL format by default)")
    parser.add_argument("--start", action="store_true", help="start the app here (Ray + Serve), stop it after")
    parser.add_argument("--model")
    parser.add_argument("--adapter")
    parser.add_argument("--miner")
    parser.add_argument("--format", default="bgl")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-prompt-tokens", type=int, default=400)
    parser.add_argument("--num-cpus", type=int, default=8)
    args = parser.parse_args()

    work = sessions(args.log, args.window, args.n)
    running = None
    if args.start:
        import ray

        from serving.config import ServeConfig
        from serving.launch import run_detector

        ray.init(
            _node_ip_address="127.0.0.1",
            num_cpus=args.num_cpus,
            include_dashboard=False,
            log_to_driver=False,  # replica access logs would bury the table
            runtime_env={"env_vars": {"PYTHONPATH": REPO_ROOT}},
        )
        running = run_detector(
            ServeConfig(port=args.port, max_model_len=768, auth="disabled"),  # loopback-only bench run
            args.model,
            args.adapter,
            args.miner,
            args.format,
            args.max_prompt_tokens,
        )
        args.url = running.url
        print(f"started in {running.startup_s:.1f}s: {running.adapter.name} {running.adapter.version} on {running.url}")
        print("completion budgets: reason 128 tokens, fast: verdict + </answer> as measured on the tokenizer")
    try:
        print(f"/detect at {args.url}: {args.n} requests of {args.window} lines per mode and phase")
        for label, concurrency in (("sequential", 1), (f"concurrent x{args.concurrency}", args.concurrency)):
            reason = asyncio.run(run_mode(args.url, work, fast=False, concurrency=concurrency))
            fast = asyncio.run(run_mode(args.url, work, fast=True, concurrency=concurrency))
            report(label, reason, fast)
    finally:
        if running is not None:
            import ray

            from serving.launch import stop_detector

            stop_detector(running)
            ray.shutdown()


if __name__ == "__main__":
    main()
