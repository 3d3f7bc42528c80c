"""`ray start --head` + `ray job submit --working-dir . -- logrl train ...`, as the README documents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _wait_for_head(head: subprocess.Popen, dashboard: str, log: Path, timeout_s: float = 180) -> None:
    """Until the head's dashboard (the job API) answers; `ray start --block` never returns."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert head.poll() is None, f"`ray start --head` exited {head.returncode}: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{dashboard}/api/version", timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as err:  # it answers, and asks for the token: it is up
            if err.code in (401, 403):
                return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"no Ray dashboard at {dashboard} after {timeout_s:.0f}s: {log.read_text()[-3000:]}")


def _stop_group(head: subprocess.Popen) -> None:
    """SIGTERM the head's process group (its GCS, raylet, workers), then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(3)  # the group's other members exit after its leader


def _check_mlflow_run(run_dir: Path, last_step: dict) -> None:
    """The job's MLflow run: the config as params, every GRPO metric of the step, the final adapter."""
    from rl_actors.tracking import MlflowRun

    run = MlflowRun(run_dir)  # the folder's run, from its mlflow_run.json
    logged = run.client.get_run(run.run_id).data
    assert logged.params["train.steps"] == "1" and logged.params["rollout.group_size"] == "2"
    reward = run.client.get_metric_history(run.run_id, "grpo/reward/total")
    assert [(m.step, m.value) for m in reward] == [(0, last_step["reward/total"])]
    files = [f.path for f in run.client.list_artifacts(run.run_id, "adapter/v1")]
    assert "adapter/v1/adapter_config.json" in files


def test_train_runs_as_a_ray_job(tmp_path, free_port):
    import ray

    from cluster.environment import local_cluster_env

    if ray.is_initialized():
        ray.shutdown()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `ray` and `logrl` of this venv
    # Closed as logrl's own clusters: every Ray port on 127.0.0.1 and token auth on with a fresh token, which
    # `ray job submit` sends too (the same environment).
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env.update({**local_cluster_env({}), "RAY_AUTH_MODE": "token"})
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port = free_port(), free_port()
    # Free ports for every fixed-port service too: another Ray on this machine holds the defaults (52365, ...).
    agent_ports = [
        f"--{name}={free_port()}"
        for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                     "metrics-export-port", "ray-client-server-port")
    ]  # fmt: skip
    # `--block` in its own process group: the test stops exactly this cluster (`ray stop` would stop every Ray on
    # the machine, a user's running training included).
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
         f"--dashboard-port={dashboard_port}", "--num-cpus=8",
         "--include-dashboard=true", "--disable-usage-stats", *agent_ports],
        env=env, stdout=(tmp_path / "ray-head.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_head(head, f"http://127.0.0.1:{dashboard_port}", tmp_path / "ray-head.log")
        overrides = {
            "data.output_dir": tmp_path / "data",
            "model.path": tmp_path / "tiny-model",
            "train.output_dir": tmp_path,
            "tiny_model.pretrain_steps": 0,
            "sft.steps": 0,
            "train.steps": 1,
            "train.prompts_per_step": 2,
            "rollout.group_size": 2,
            "train.mlflow": "true",  # MLflow beside TensorBoard, in a local SQLite store under the run folder
        }
        sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
        for _ in range(12):  # on a loaded box the dashboard's job agent can come up well after `ray start` returns
            job = subprocess.run(
                ["ray", "job", "submit", f"--address=http://127.0.0.1:{dashboard_port}", "--working-dir", str(REPO),
                 "--", "logrl", "train", "--config", "configs/quickstart.yaml", *sets],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if "No available agent to submit job" not in job.stdout + job.stderr:
                break
            time.sleep(10)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "succeeded" in job.stdout
        latest = json.loads((tmp_path / "latest_adapter.json").read_text())
        assert latest["version"] == 1 and Path(latest["path"], "adapter_config.json").exists()
        steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [s["step"] for s in steps if s["stage"] == "grpo"] == [0]
        _check_mlflow_run(tmp_path, steps[-1])
    finally:
        _stop_group(head)
        # What `ray stop` also does: forget this head as "the current cluster", or later `ray.init()` calls in this
        # process would try to join it.
        ray_tmp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # Ray's order on Linux
        current = Path(ray_tmp, "ray", "ray_current_cluster")
        if current.exists() and current.read_text().strip().endswith(f":{gcs_port}"):
            current.unlink()
