"""Process environment and Ray connection for logrl runs (local or a cluster, CPU or GPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# What vLLM needs on a CPU-only box (the driver's VLLM_* variables follow every actor, see forwarded_env).
CPU_VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
}


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


def init_ray(address: str | None, num_cpus: int | None) -> None:
    """Join the given cluster, the one a `ray job submit` runs in, or start a local one."""
    import ray

    from rl_actors.actor_group import forwarded_env

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or os.environ["RAY_ADDRESS"])  # a job keeps its own runtime_env
    else:
        # A dead worker's whole process group is killed: a SIGKILLed rollout actor takes its vLLM engine-core
        # process (and the GPU memory it holds) with it. Ray 2.60's default; the image sets it for `ray start` too.
        os.environ.setdefault("RAY_process_group_cleanup_enabled", "1")
        ray.init(
            num_cpus=num_cpus,
            runtime_env={"env_vars": forwarded_env()},
            include_dashboard=False,
            _node_ip_address="127.0.0.1",  # a local cluster is reached over loopback only
        )
