"""Process environment and Ray connection for logrl runs (local or a cluster, CPU or GPU)."""

from __future__ import annotations

import os
from pathlib import Path


def apply_defaults() -> None:
    """Defaults that make vLLM and DeepSpeed work on a CPU-only box; explicit settings always win."""
    cache = Path(os.environ.get("LOGRL_CACHE_DIR", Path.cwd() / ".cache")).resolve()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache / "torch_extensions"))  # DeepSpeed's comm op build
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not _has_cuda():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        os.environ.setdefault("VLLM_CACHE_ROOT", str(cache / "vllm"))


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
        ray.init(
            num_cpus=num_cpus,
            runtime_env={"env_vars": forwarded_env()},
            include_dashboard=False,
            _node_ip_address="127.0.0.1",  # a local cluster is reached over loopback only
        )
