"""The [gpu] extra pins the vLLM that Ray's own LLM extra is tested with; Python 3.12 is allowed; the image
installs the package non-editable."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_gpu_extra_pins_the_vllm_of_rays_llm_extra():
    ray_vllm = [r for r in requires("ray") if r.startswith("vllm") and 'extra == "llm"' in r]
    assert ray_vllm, "ray declares no vllm for its llm extra"
    pinned = re.search(r"==\s*([\w.]+)", ray_vllm[0]).group(1)
    assert PROJECT["optional-dependencies"]["gpu"] == [f"vllm=={pinned}"]


def test_python_312_is_allowed():
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert "3.11.9" in allowed and "3.12.4" in allowed


def test_dockerfile_installs_non_editable():
    installs = [line for line in (REPO / "Dockerfile").read_text().splitlines() if "pip install" in line]
    assert installs and not any(re.search(r"\s-e\s|--editable", line) for line in installs)
    assert any(".[gpu]" in line for line in installs)
