"""The [gpu] extra pins the vLLM that Ray's own LLM extra is tested with; Python 3.12 is allowed; the image
installs the package non-editable."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest
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


# --- the image and the manifests, as a user runs them -----------------------------------------------------------


def _dockerfile_copies() -> list[str]:
    """Sources of the Dockerfile's COPY lines (files and folders, relative to the repo)."""
    sources = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_the_image_copies_every_package_the_wheel_declares():
    import fnmatch

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.parent.name for p in REPO.glob("*/__init__.py")]
    declared = sorted(p for p in packages if any(fnmatch.fnmatch(p, pattern) for pattern in include))
    assert "evaluation" in declared and "cluster" in declared
    assert not set(declared) - set(_dockerfile_copies()), "packages the image would miss"


def test_the_base_image_cuda_matches_the_resolved_wheels():
    """The [gpu] extra's torch is built for one CUDA version (docs/results/gpu-deps, `make gpu-deps-check`); the
    base image must carry the same, or runtime compiles (flashinfer, triton) mix two CUDA versions."""
    import json

    summary = json.loads((REPO / "docs" / "results" / "gpu-deps" / "summary.json").read_text())
    assert summary["key"]["vllm"] == PROJECT["optional-dependencies"]["gpu"][0].split("==")[1]
    base = re.search(r"ARG BASE_IMAGE=(\S+)", (REPO / "Dockerfile").read_text()).group(1)
    assert base.endswith(f"-{summary['image_tag']}"), (base, summary["cuda"])
    assert "FROM ${BASE_IMAGE}" in (REPO / "Dockerfile").read_text()


@pytest.mark.slow
def test_the_wheel_the_image_builds_runs_the_cli_from_a_clean_venv(tmp_path):
    """Exactly the files the Dockerfile copies, built into a wheel and installed (no deps) into a fresh venv whose
    only other packages are the dependencies (the dev venv's site-packages, without its editable logrl)."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig
    import venv

    src = tmp_path / "src"
    src.mkdir()
    for name in _dockerfile_copies():
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    pip = [sys.executable, "-m", "pip"]
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build = [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src]
    subprocess.run(build, check=True, env=clean)
    (wheel,) = (tmp_path / "dist").glob("logrl-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())  # fmt: skip
    install = [*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", "--force-reinstall", wheel]
    subprocess.run(install, check=True, env=clean)  # forced: pip itself runs from the dev venv, which has logrl
    # Then the dependencies, as a path entry (not a site dir: the dev venv's .pth files, its editable logrl, are not
    # processed); entries of the venv's own site-packages come first.
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = "import cluster.cli, serving, evaluation, evaluation.config; print(cluster.cli.__file__)"
    where = subprocess.run([python, "-c", probe], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().startswith(str(site)), where.stdout  # the installed copy, not the repo
    usage = subprocess.run(
        [env_dir / "bin" / "logrl", "--help"], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert usage.returncode == 0 and "train" in usage.stdout, usage.stderr[-2000:]


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _mounts(container: dict) -> list[str]:
    return [m["mountPath"] for m in container.get("volumeMounts", [])]


def _on_a_mount(path: str, container: dict) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in _mounts(container))


def _gpu_workers(cluster_spec: dict, replicas_key: str) -> float:
    return sum(
        g[replicas_key] * float(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        for g in cluster_spec["workerGroupSpecs"]
        for c in g["template"]["spec"]["containers"]
    )


def test_the_rayjob_entrypoint_config_and_storage_are_what_the_code_needs():
    from cluster.cli import build_parser
    from cluster.config import load_config

    spec = _manifest("rayjob-train.yaml")["spec"]
    program, command, *rest = spec["entrypoint"].split()
    assert program in PROJECT["scripts"] and PROJECT["scripts"][program] == "cluster.cli:main"
    args = build_parser().parse_args([command, *rest])  # the CLI accepts the entrypoint as written
    assert args.config.split("/")[0] in _dockerfile_copies()
    cfg = load_config(REPO / args.config)  # the image's config validates (its own errors name the field)
    cluster = spec["rayClusterSpec"]
    images = {c["image"] for c in _containers(cluster)}
    assert len(images) == 1, images  # the driver (head) and the actors run the same code
    for container in _containers(cluster):  # every path a stage writes or reads is on shared storage, on every pod
        for path in (cfg.train.output_dir, cfg.data.output_dir, *cfg.data.paths):
            assert _on_a_mount(path, container), (container["name"], path)
    needed = cfg.rollout.num_workers * cfg.rollout.num_gpus_per_worker + (
        0 if cfg.rollout.colocate_with_learner else cfg.learner.num_workers * cfg.learner.num_gpus_per_worker
    )
    assert _gpu_workers(cluster, "minReplicas") >= needed  # the placement groups can be satisfied
    assert cluster["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0"  # no actor lands on the GPU-less head


def test_the_rayservice_has_its_keys_config_and_gpus():
    import yaml

    from cluster.config import load_config

    spec = _manifest("rayservice-detector.yaml")["spec"]
    (app,) = yaml.safe_load(spec["serveConfigV2"])["applications"]
    module, attr = app["import_path"].split(":")
    assert (REPO / (module.replace(".", "/") + ".py")).is_file() and attr == "app"
    config = app["runtime_env"]["env_vars"]["LOGRL_CONFIG"]
    cfg = load_config(REPO / config.removeprefix("/app/"))
    cluster = spec["rayClusterConfig"]
    assert cfg.serve.auth == "enabled"  # so every container needs the keys, from a Secret, never inline
    for container in _containers(cluster):
        env = {e["name"]: e for e in container.get("env", [])}
        assert "secretKeyRef" in env["LOGRL_API_KEYS"]["valueFrom"], container["name"]
        assert _on_a_mount(cfg.train.output_dir, container)  # the adapter to serve is read from shared storage
    assert _gpu_workers(cluster, "maxReplicas") >= cfg.serve.num_replicas * cfg.serve.num_gpus_per_replica
