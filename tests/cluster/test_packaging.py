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


def _manifest(name: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "cluster" / "kuberay" / name).read_text())


def test_rayservice_serve_config_deploys():
    import yaml

    spec = _manifest("rayservice-detector.yaml")["spec"]
    (app,) = yaml.safe_load(spec["serveConfigV2"])["applications"]
    assert app["import_path"] == "cluster.serve_entry:app"
    runtime_env = app.get("runtime_env", {})
    # Serve accepts only remote URIs as working_dir; the image has logrl installed, so none is needed.
    working_dir = runtime_env.get("working_dir")
    assert working_dir is None or "://" in working_dir, working_dir
    config = runtime_env["env_vars"]["LOGRL_CONFIG"]
    assert config.startswith("/app/"), config  # absolute: a replica's working directory is not /app
    assert (REPO / config.removeprefix("/app/")).is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "COPY --chown=ray:users configs ./configs" in dockerfile
    # A worker group that may grow needs KubeRay's in-tree autoscaler.
    cluster = spec["rayClusterConfig"]
    growing = [g for g in cluster["workerGroupSpecs"] if g.get("maxReplicas", 0) > g.get("minReplicas", 0)]
    assert growing and cluster.get("enableInTreeAutoscaling") is True


def test_rayjob_runs_a_config_the_image_has():
    spec = _manifest("rayjob-train.yaml")["spec"]
    config = spec["entrypoint"].split("--config", 1)[1].split()[0]
    assert (REPO / config).is_file()
