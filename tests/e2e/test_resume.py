"""A training run SIGKILLed after a checkpoint resumes with `logrl train --resume` as if never stopped.

Three `logrl train` processes on the same data and tiny model, GRPO from a fresh LoRA, 3 steps, a checkpoint
every 2 steps: an uninterrupted run; a run killed (the whole process group, Ray included) as soon as its step-2
checkpoint is complete; and `--resume` of the killed run. The resumed run does only step 3 (index 2), on the
prompt batch the uninterrupted run drew there, with the same rollouts, rewards and loss.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAME = ("reward/total", "rollout/accuracy", "rollout/completion_tokens", "actor/grad_norm", "actor/kl_mean")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this venv's `logrl`
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.pop("RAY_ADDRESS", None)
    return env


def _train(scratch: Path, out: Path, *extra: str) -> subprocess.Popen:
    overrides = {
        "data.paths": f"[{REPO / 'data/bgl/BGL_2k.log'}]",
        "data.output_dir": scratch / "data",
        "model.path": scratch / "tiny-model",
        "tiny_model.pretrain_steps": 0,
        "sft.steps": 0,
        "train.output_dir": out,
        "train.steps": 3,
        "train.checkpoint_every": 2,
        "train.prompts_per_step": 2,
        "rollout.group_size": 2,
        "rollout.max_new_tokens": 32,
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    log = (out.parent / f"{out.name}.log").open("a")
    return subprocess.Popen(
        ["logrl", "train", "--config", "configs/quickstart.yaml", *sets, *extra],
        cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen, out: Path, timeout: float = 600) -> None:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert code == 0, (out.parent / f"{out.name}.log").read_text()[-4000:]


def _grpo_steps(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["stage"] == "grpo"]


def test_a_killed_run_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    scratch = tmp_path / "shared"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _finish(_train(scratch, whole), whole)  # also builds the data and the tiny model both runs use

    run = _train(scratch, killed)
    marker = killed / "checkpoints" / "step-2" / "trainer_state.json"
    deadline = time.monotonic() + 600
    while not marker.exists():
        assert run.poll() is None, "the run ended before its step-2 checkpoint"
        assert time.monotonic() < deadline, "no step-2 checkpoint in time"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert len(_grpo_steps(killed)) in (2, 3)  # step 3 may have been logged before the kill, never checkpointed

    _finish(_train(scratch, killed, "--resume"), killed)
    log = (tmp_path / "killed.log").read_text()
    assert "resumed from" in log and "2 steps done, adapter v2" in log
    uninterrupted, resumed = _grpo_steps(whole), _grpo_steps(killed)
    assert [r["step"] for r in uninterrupted] == [0, 1, 2] == [r["step"] for r in resumed]  # no step twice
    assert [r["prompts"] for r in resumed] == [r["prompts"] for r in uninterrupted]  # none replayed or skipped
    for key in SAME:
        assert resumed[2][key] == pytest.approx(uninterrupted[2][key], rel=1e-4, abs=1e-6), key
    assert resumed[2]["adapter/version"] == 3 and resumed[2]["sync/max_abs_logprob_diff"] < 1e-3
    assert json.loads((killed / "latest_adapter.json").read_text())["version"] == 3
    assert (killed / "checkpoints" / "step-3" / "trainer_state.json").exists()
    # The optimizer state came back too: Adam's step-3 update from fresh moments would differ.
    from safetensors.torch import load_file

    a, b = (load_file(str(out / "adapters" / "v3" / "adapter_model.safetensors")) for out in (whole, killed))
    assert a.keys() == b.keys() and all(torch_allclose(a[k], b[k]) for k in a)


def torch_allclose(x, y) -> bool:
    import torch

    return torch.allclose(x, y, rtol=1e-5, atol=1e-7)
