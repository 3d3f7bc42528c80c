"""Process environment and Ray connection for logrl runs (local or a cluster, CPU or GPU)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What vLLM needs on a CPU-only box (the driver's VLLM_* variables follow every actor, see forwarded_env).
CPU_VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
}


# Ray's single-node mode (its default on macOS/Windows): the node's address is 127.0.0.1, so the GCS, raylets,
# workers, agents and metrics exporters all listen on loopback. Read by each Ray process when it imports Ray.
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Serve's documented hook for middlewares in its HTTP proxy: ours closes the proxy's own /-/ routes.
SERVE_PROXY_MIDDLEWARES_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
SERVE_PROXY_MIDDLEWARES = "serving.proxy_guard:proxy_middlewares"


def _cache_dir() -> Path:
    return Path(os.environ.get("LOGRL_CACHE_DIR", Path.cwd() / ".cache")).resolve()


def apply_process_defaults() -> None:
    """Defaults every logrl process wants, whatever the device; explicit settings always win."""
    cache = _cache_dir()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache / "torch_extensions"))  # DeepSpeed's comm op build
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def vllm_on_cpu(cfg: Any) -> bool:
    """Whether the config runs vLLM on CPUs: neither rollout workers nor Serve replicas reserve a GPU.

    Decided from the config, never from whether this process sees CUDA: on KubeRay the driver runs on a
    GPU-less head node while the actors it starts hold GPUs.
    """
    return cfg.rollout.num_gpus_per_worker == 0 and cfg.serve.num_gpus_per_replica == 0


def device_env(cpu: bool, cache: Path) -> dict[str, str]:
    """The environment defaults for vLLM on CPUs (`cpu`), or none for GPUs."""
    return {**CPU_VLLM_ENV, "VLLM_CACHE_ROOT": str(cache / "vllm")} if cpu else {}


def apply_defaults(cfg: Any = None) -> None:
    """Process defaults, plus the CPU-only vLLM settings when the config's vLLM roles reserve no GPU.

    Without a config (scripts that set up the environment before loading one) the fallback is whether this
    process sees CUDA; the `logrl` CLI always passes its config.
    """
    apply_process_defaults()
    cpu = vllm_on_cpu(cfg) if cfg is not None else not _has_cuda()
    for key, value in device_env(cpu, _cache_dir()).items():
        os.environ.setdefault(key, value)


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def local_cluster_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What a local Ray cluster started by logrl needs to be closed: every Ray port on loopback, Ray's token auth on
    with a fresh token for this cluster (unless `environ` already names one, or sets RAY_AUTH_MODE=disabled), and
    the Serve proxy's guard. Returns only the settings `environ` does not already have."""
    wanted = {RAY_LOOPBACK_ENV: "0", SERVE_PROXY_MIDDLEWARES_ENV: SERVE_PROXY_MIDDLEWARES}
    has_token = environ.get("RAY_AUTH_TOKEN") or environ.get("RAY_AUTH_TOKEN_PATH")
    if environ.get("RAY_AUTH_MODE", "").lower() != "disabled" and not has_token:
        # RAY_AUTH_MODE stays unset: ray.init then turns token auth on for the new cluster and reloads its own
        # settings, which it would not do for a mode set after Ray was imported.
        wanted["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return {key: value for key, value in wanted.items() if key not in environ}


def init_ray(address: str | None, num_cpus: int | None, log_to_driver: bool = True) -> None:
    """Join the given cluster, the one a `ray job submit` runs in, or start a local one, closed to the network
    (every port on loopback, token auth on). `log_to_driver`: False keeps the actors' logs out of this terminal."""
    ray_was_imported = "ray" in sys.modules
    import ray

    from contract.actor_env import forwarded_env

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or os.environ["RAY_ADDRESS"])  # a job keeps its own runtime_env
        return
    # Ray's processes inherit this environment; Ray itself read it when it was imported, so a process that
    # imported Ray earlier gets the loopback setting through the one private switch behind it.
    os.environ.update(local_cluster_env(os.environ))
    if ray_was_imported and os.environ[RAY_LOOPBACK_ENV] == "0":
        from serving.engine_internals import ray_single_node_on_loopback

        ray_single_node_on_loopback()
    # A dead worker's whole process group is killed: a SIGKILLed rollout actor takes its vLLM engine-core process
    # (and the GPU memory it holds) with it. Ray 2.60's default; the image sets it for `ray start` too.
    os.environ.setdefault("RAY_process_group_cleanup_enabled", "1")
    # "local": always a new cluster; without it ray.init joins the one a `ray start` on this machine left in
    # its ray_current_cluster file, which logrl did not start and cannot vouch is closed.
    ray.init(
        address="local",
        num_cpus=num_cpus,
        runtime_env={"env_vars": forwarded_env()},
        include_dashboard=False,
        log_to_driver=log_to_driver,
    )
