"""One list of the driver's settings that follow every actor and replica."""

from __future__ import annotations

from contract.actor_env import forwarded_env
from contract.sharding import split_evenly

ENVIRON = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_CACHE": "/c",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "2",
    "TMPDIR": "/t",
    "TORCH_EXTENSIONS_DIR": "/x",
    "PYTHONPATH": "/repo",
    "HOME": "/home/u",
    "RAY_ADDRESS": "auto",
}


def test_actors_get_the_engine_and_cache_settings_only():
    not_forwarded = ("PYTHONPATH", "HOME", "RAY_ADDRESS")
    assert forwarded_env(ENVIRON) == {k: v for k, v in ENVIRON.items() if k not in not_forwarded}


def test_a_role_may_add_names():
    assert forwarded_env(ENVIRON, also=("PYTHONPATH",))["PYTHONPATH"] == "/repo"


def test_split_evenly_covers_the_range_in_near_equal_parts():
    assert split_evenly(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert split_evenly(0, 2) == [(0, 0), (0, 0)]
