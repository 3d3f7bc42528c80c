"""Start the detector app on the configured host/port, wait until it answers, and stop it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import ray
from ray import serve

from pipelines.reading.regex_format import RegexFormat
from serving.adapters import board_name, close_board, open_board
from serving.app import DEFAULT_APP_NAME, base_model_id, build_detector_app
from serving.client import auth_headers
from serving.config import ServeConfig
from serving.detect import AdapterInfo, load_adapter_info

PROXY_TIMEOUT_MARGIN_S = 10


@dataclass(frozen=True)
class RunningDetector:
    """A deployed detector: where to reach it, which models it serves, how long it took to become healthy."""

    url: str
    app_name: str
    base_model: str
    adapter: AdapterInfo
    startup_s: float


def wait_until_healthy(url: str, model_name: str, timeout_s: float) -> None:
    """Poll GET /v1/models until it lists `model_name` (the proxy is up and the engine serves the adapter).

    Behind API keys without one at hand (a 401), the open GET /health answering 200 is taken as ready: the
    adapter is registered when the engine starts.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/v1/models", timeout=5, headers=auth_headers())
            if response.status_code == 401 and httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
            if response.status_code == 200:
                if any(card.get("id") == model_name for card in response.json().get("data", [])):
                    return
                last_error = f"/v1/models does not list {model_name!r} yet"
            else:
                last_error = f"/v1/models answered {response.status_code}"
        except httpx.HTTPError as err:
            last_error = f"{type(err).__name__}: {err}"
        time.sleep(1)
    raise TimeoutError(f"detector at {url} not healthy after {timeout_s:.0f}s: {last_error}")


def check_capacity(serve_cfg: ServeConfig) -> None:
    """Refuse early when Ray can never place the replicas (serve.run would otherwise wait forever)."""
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: call ray.init(...) first (on a 2-core box, num_cpus=8)")
    # One placement-group bundle per replica: its own CPUs plus the engine's (1 CPU on CPU boxes, or its GPUs).
    gpus = serve_cfg.num_gpus_per_replica
    replicas = serve_cfg.initial_replicas
    need = {"CPU": replicas * (serve_cfg.num_cpus_per_replica + (0 if gpus else 1))}
    if gpus:
        need["GPU"] = replicas * gpus
    have = ray.cluster_resources()
    short = {name: (amount, have.get(name, 0)) for name, amount in need.items() if have.get(name, 0) < amount}
    if short:
        detail = ", ".join(f"{name}: need {amount:g}, cluster has {total:g}" for name, (amount, total) in short.items())
        raise RuntimeError(f"Ray cannot place {replicas} detector replica(s): {detail}")


def run_detector(
    serve_cfg: ServeConfig,
    model_path: str,
    adapter_path: str,
    miner_state_path: str,
    data_format: str,
    max_prompt_tokens: int,
    regex: RegexFormat | None = None,
    app_name: str = DEFAULT_APP_NAME,
) -> RunningDetector:
    """Deploy the detector on serve_cfg.host:port and return once it serves the adapter.

    Ray must already be initialised (cluster/ does it); on a small box give it ~8 logical CPUs.
    """
    started = time.perf_counter()
    check_capacity(serve_cfg)
    adapter = load_adapter_info(serve_cfg.adapter_name, adapter_path)
    open_board(app_name, adapter)  # where an adapter switch on one replica reaches the others
    app = build_detector_app(
        serve_cfg,
        model_path,
        adapter_path,
        miner_state_path,
        data_format,
        max_prompt_tokens,
        regex,
        board=board_name(app_name),
    )
    # The proxy's own timeout is a backstop behind the replica guard's (which answers JSON 503/504 first); it also
    # bounds a request waiting for a replica when none is alive (Serve's plain-text 408).
    timeout_s = serve_cfg.request_timeout_s + PROXY_TIMEOUT_MARGIN_S
    serve.start(http_options={"host": serve_cfg.host, "port": serve_cfg.port, "request_timeout_s": timeout_s})
    serve.run(app, name=app_name, route_prefix="/")
    host = "127.0.0.1" if serve_cfg.host in ("0.0.0.0", "::") else serve_cfg.host
    url = f"http://{host}:{serve_cfg.port}"
    wait_until_healthy(url, serve_cfg.adapter_name, serve_cfg.ready_timeout_s)
    return RunningDetector(
        url=url,
        app_name=app_name,
        base_model=base_model_id(model_path),
        adapter=adapter,
        startup_s=time.perf_counter() - started,
    )


def stop_detector(detector: RunningDetector | str = DEFAULT_APP_NAME, shutdown_serve: bool = True) -> None:
    """Delete the detector app and, by default, stop Serve (its proxy and controller) too; Ray keeps running."""
    app_name = detector.app_name if isinstance(detector, RunningDetector) else detector
    serve.delete(app_name)
    close_board(app_name)
    if shutdown_serve:
        serve.shutdown()
