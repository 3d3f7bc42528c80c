"""CPU-only settings come from the config's devices, not from whether the driver process sees CUDA."""

from __future__ import annotations

import argparse
import os

import pytest

import cluster.environment as environment
from cluster.config import DEFAULT_CONFIG, load_config
from cluster.environment import CPU_VLLM_ENV, apply_defaults, device_env, vllm_on_cpu

GPU_CONFIG = DEFAULT_CONFIG.parent / "gpu-cluster.yaml"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in [*CPU_VLLM_ENV, "VLLM_CACHE_ROOT", "TORCH_EXTENSIONS_DIR", "TOKENIZERS_PARALLELISM"]:
        monkeypatch.setenv(key, "")  # recorded first, so whatever apply_defaults sets is undone after the test
        monkeypatch.delenv(key)
    monkeypatch.setenv("LOGRL_CACHE_DIR", str(tmp_path))
    return monkeypatch


def test_vllm_device_is_read_off_the_config():
    assert vllm_on_cpu(load_config(DEFAULT_CONFIG)) is True
    assert vllm_on_cpu(load_config(GPU_CONFIG)) is False
    assert vllm_on_cpu(load_config(DEFAULT_CONFIG, ["rollout.num_gpus_per_worker=1"])) is False
    assert vllm_on_cpu(load_config(DEFAULT_CONFIG, ["serve.num_gpus_per_replica=1"])) is False


def test_device_env(tmp_path):
    assert device_env(False, tmp_path) == {}
    cpu = device_env(True, tmp_path)
    assert cpu["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and cpu["VLLM_CACHE_ROOT"] == str(tmp_path / "vllm")


def test_gpu_config_on_a_gpu_less_driver_gets_no_cpu_settings(clean_env):
    clean_env.setattr(environment, "_has_cuda", lambda: False)  # a KubeRay head node
    apply_defaults(load_config(GPU_CONFIG))
    assert not any(key in os.environ for key in CPU_VLLM_ENV)


def test_cpu_config_on_a_gpu_driver_gets_cpu_settings(clean_env):
    clean_env.setattr(environment, "_has_cuda", lambda: True)
    apply_defaults(load_config(DEFAULT_CONFIG))
    assert {key: os.environ[key] for key in CPU_VLLM_ENV} == CPU_VLLM_ENV


def test_cli_applies_the_loaded_configs_device_settings(clean_env):
    from cluster.cli import _config

    clean_env.setattr(environment, "_has_cuda", lambda: False)
    _config(argparse.Namespace(config=str(GPU_CONFIG), set=[]))
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
